"""``orchestrator serve``: the OpenAI-compatible gateway (the ``[server]`` section;
the work is :func:`orchestrator.server.command.serve`'s)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from orchestrator.cli.app import STATE, app


@app.command()
def serve(
    host: Annotated[
        Optional[str],
        typer.Option(
            "--host",
            help="Address to bind. Default: [server] host, else 127.0.0.1.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port. Default: [server] port, else 8000.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes. Default: [server] workers, else 1.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the registry as an OpenAI-compatible HTTP gateway.

    Needs the [server] extra: pip install 'orchestrator-router[server]'.
    """
    # uvicorn and the gateway are the [server] extra: loaded only by this command.
    from orchestrator.server.command import serve as run_gateway

    config = None if STATE.config is None else str(STATE.config)
    run_gateway(host=host, port=port, workers=workers, config_path=config)
