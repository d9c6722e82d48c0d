"""The ``[server]`` section of the configuration file: where the gateway
listens, who may call it, routing aliases and operational switches.

Strict: unknown keys, wrong types, non-finite numbers and out-of-range values
are refused with an error naming the key (``server.port``, ``server.api_keys[1].env``).
This module imports nothing of the registry, so ``orchestrator.config`` can
embed :class:`ServerSettings` as its ``server`` section.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.core.model import ModelConstraints

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HASH = re.compile(r"^sha256:[0-9a-f]{32}:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")


#: The lifespan-state key under which the gateway hands ``header_timeout`` to
#: uvicorn's protocol (:mod:`orchestrator.server.protocol`).
HEADER_TIMEOUT_STATE = "orchestrator.header_timeout"
#: The scope extension under which that protocol hands each request a watch
#: on its connection (``watch(callback)``, ``unwatch()``): the callback runs
#: when the client hangs up, so the gateway needs no task waiting on ``receive``;
#: its ``received`` is true once the whole request body has arrived.
DISCONNECT_EXTENSION = "orchestrator.disconnect"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ApiKeyEntry(_Strict):
    """One client key: ``env`` names the environment variable holding it, or
    ``hash`` is its salted digest (``orchestrator.server.auth.hash_key``);
    exactly one of them. ``tenant`` gets its own cache namespace."""

    env: Optional[str] = None
    hash: Optional[str] = None
    tenant: str = "default"

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the NAME of an environment variable (like GATEWAY_KEY), never the key"
            )
        return value

    @field_validator("hash")
    @classmethod
    def _hash_format(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _HASH.match(value):
            raise ValueError(
                "must look like sha256:<32 hex salt>:<64 hex digest> "
                "(python -m orchestrator.server.auth prints one)"
            )
        return value

    @field_validator("tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not 1-128 letters, digits or _.@+-")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyEntry:
        if (self.env is None) == (self.hash is None):
            raise ValueError("give exactly one of env (a variable name) or hash (a salted digest)")
        return self


class AliasSettings(_Strict):
    """A routing alias (``model="cheap"``): the constraints it applies."""

    capabilities: list[str] = Field(default_factory=list)
    max_cost: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    min_speed: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    exclude_models: list[str] = Field(default_factory=list)

    def constraints(self) -> ModelConstraints:
        """The alias as selection constraints (capability names checked here)."""
        return ModelConstraints(**self.model_dump(exclude_defaults=True))

    @field_validator("capabilities")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        ModelConstraints(capabilities=value)
        return value


class ServerSettings(_Strict):
    """``[server]``: the gateway (``orchestrator serve``)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    #: Allow a non-loopback address without client keys (off: refuse to start).
    allow_unauthenticated: bool = False
    aliases: dict[str, AliasSettings] = Field(default_factory=dict)
    #: An explicitly named model fails over to others when it fails.
    failover_explicit_models: bool = False
    retry_budget: int = Field(2, ge=0, le=20)
    #: Seconds a request may take in total, failovers included.
    request_timeout: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False)
    #: The longest a request is held for a rate-limited model's slot (its
    #: window's, or a provider's Retry-After); past it the client gets the 429
    #: with Retry-After at once (its SDK waits and retries). Unset: any wait
    #: within request_timeout.
    max_wait: Optional[float] = Field(None, ge=0, le=3600, allow_inf_nan=False)
    #: Seconds from a connection's opening (or a request's first byte) to the
    #: end of the request's headers; past it the connection gets a 408 and is closed.
    header_timeout: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False)
    #: Whole seconds SIGTERM waits for in-flight requests before closing them.
    shutdown_timeout: int = Field(30, ge=1, le=3600)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    #: Request ids kept for ``POST /v1/feedback``, and how long.
    feedback_capacity: int = Field(100_000, ge=1, le=10_000_000)
    feedback_ttl: float = Field(3600.0, gt=0, le=30 * 86400, allow_inf_nan=False)
    access_log: bool = True

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        if value != "localhost":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or localhost") from None
        return value

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, value: dict[str, AliasSettings]) -> dict[str, AliasSettings]:
        for name in value:
            if not _NAME.match(name) or name == "auto":
                raise ValueError(
                    f"alias {name!r} must be 1-128 letters, digits or _.@+- and not 'auto'"
                )
        return value

    def is_loopback(self) -> bool:
        """Whether ``host`` accepts connections from this machine only."""
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
