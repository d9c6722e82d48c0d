"""``orchestrator serve``: an OpenAI-compatible gateway in front of a registry.

``orchestrator.server.app.Gateway`` is the ASGI application,
``orchestrator.server.command.serve`` starts it under uvicorn, and
``orchestrator.server.settings.ServerSettings`` is the ``[server]`` section.
Nothing is imported here, so the configuration can use the settings without
loading the server.
"""
