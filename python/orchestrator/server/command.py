"""``orchestrator serve``: run the gateway under uvicorn (uvloop + httptools,
with :mod:`~orchestrator.server.protocol`'s bound on request heads).

The CLI calls :func:`serve` with its parsed options. Each worker process
builds its own registry from the same configuration file
(:func:`app_from_environment`, the factory uvicorn imports); with
``[state] url = "redis://..."`` the workers share learning, breakers and
cache through Redis. SIGTERM or SIGINT stops accepting connections, lets
in-flight requests finish (up to ``shutdown_timeout`` seconds), then closes
the registry, which flushes the shared state.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Optional

import uvicorn
import uvicorn.config

from orchestrator.config import (
    DEFAULT_CONFIG_NAME,
    LoadedConfig,
    discover_environment,
    load_config,
    registry_parts,
    state_url_of,
)
from orchestrator.errors import ServeError as ServeError
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.app import Gateway
from orchestrator.server.auth import KeyChecker
from orchestrator.server.metrics import MULTIPROC_ENV, multiprocess_directory
from orchestrator.server.settings import ServerSettings

#: How the parent tells its workers which configuration to load.
CONFIG_ENV = "ORCHESTRATOR_SERVE_CONFIG"
#: uvicorn's httptools protocol with the request-head bound (by import path:
#: each worker process imports it).
HTTP_PROTOCOL = "orchestrator.server.protocol:HeaderTimeoutProtocol"


def _loaded(config_path: Optional[str]) -> LoadedConfig:
    if config_path:
        return load_config(config_path)
    if Path(DEFAULT_CONFIG_NAME).is_file():
        return load_config(DEFAULT_CONFIG_NAME)
    return discover_environment()


def resolve_settings(
    loaded: LoadedConfig,
    host: Optional[str] = None,
    port: Optional[int] = None,
    workers: Optional[int] = None,
) -> ServerSettings:
    """The ``[server]`` section with the command-line options on top, checked
    for a safe start: no client keys means loopback only, unless
    ``allow_unauthenticated = true``; every key's variable must be set."""
    given = {"host": host, "port": port, "workers": workers}
    update = {k: v for k, v in given.items() if v is not None}
    try:
        settings = ServerSettings.model_validate({**loaded.config.server.model_dump(), **update})
    except ValueError as exc:
        raise ServeError(f"invalid option: {exc}") from None
    if not settings.api_keys and not settings.is_loopback() and not settings.allow_unauthenticated:
        raise ServeError(
            f"refusing to listen on {settings.host} without client keys: add [server] api_keys, "
            "or set [server] allow_unauthenticated = true to expose the gateway to anyone"
        )
    try:
        KeyChecker(settings.api_keys)
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    _check_alias_exclusions(loaded, settings)
    if settings.workers > 1 and state_url_of(loaded) == "local":
        raise ServeError(
            f"--workers {settings.workers} without a [state] section would give each worker its "
            'own learning and breakers; set [state] url = "redis://..." to share them'
        )
    return settings


def _check_alias_exclusions(loaded: LoadedConfig, settings: ServerSettings) -> None:
    """Every name an alias excludes is a configured model: else each request
    for that alias would fail inside the registry."""
    models = [entry.name for entry in loaded.config.models]
    for name, alias in settings.aliases.items():
        for excluded in alias.exclude_models:
            if excluded not in models:
                raise ServeError(
                    f"server.aliases.{name}.exclude_models: no model named {excluded!r} is "
                    f"configured (the models: {', '.join(models)})"
                )


def gateway_for(loaded: LoadedConfig, settings: ServerSettings) -> Gateway:
    """A gateway over a registry built from the configuration."""
    return Gateway(ModelRegistry.from_parts(registry_parts(loaded)), settings)


def app_from_environment() -> Gateway:
    """The uvicorn factory of each worker: the configuration named by
    ``$ORCHESTRATOR_SERVE_CONFIG`` (or found as :func:`serve` finds it)."""
    loaded = _loaded(os.environ.get(CONFIG_ENV) or None)
    return gateway_for(loaded, resolve_settings(loaded))


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the gateway's access log on stdout."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["gateway"] = {"format": "%(asctime)s %(message)s"}
    config["handlers"]["gateway"] = {
        "formatter": "gateway",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["orchestrator"] = {"handlers": ["default"], "level": "WARNING"}
    config["loggers"]["orchestrator.server.access"] = {
        "handlers": ["gateway"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def serve(
    host: Optional[str] = None,
    port: Optional[int] = None,
    workers: Optional[int] = None,
    config_path: Optional[str] = None,
) -> None:
    """Run the gateway until SIGTERM/SIGINT. ``None`` options come from the
    ``[server]`` section (defaults: 127.0.0.1, port 8000, one worker)."""
    loaded = _loaded(config_path)
    settings = resolve_settings(loaded, host, port, workers)
    if loaded.path is not None:
        os.environ[CONFIG_ENV] = str(loaded.path.resolve())
    # The workers re-read the file; the command line's host/port/workers only
    # concern this process, which binds the socket.
    # One worker writes metric files too when the operator set the multiproc
    # directory (prometheus_client's mode is the environment's): then that
    # directory's files of an earlier run must be wiped as with many workers.
    if settings.workers == 1 and not os.environ.get(MULTIPROC_ENV):
        _run(settings)
        return
    with multiprocess_directory():  # one /metrics for all the workers
        _run(settings)


def _run(settings: ServerSettings) -> None:
    uvicorn.run(
        "orchestrator.server.command:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=HTTP_PROTOCOL,
        lifespan="on",
        access_log=False,
        log_config=_log_config(),
        timeout_graceful_shutdown=settings.shutdown_timeout,
        server_header=False,
        # No X-Forwarded-* rewriting of the client address: the gateway never
        # reads it, and the middleware would run on every request.
        proxy_headers=False,
    )
