"""A configuration from the environment, when there is no file: the
providers whose keys are set and the models a local Ollama serves."""

from __future__ import annotations

import os
from typing import Optional

import httpx

from orchestrator.config.loading import LoadedConfig
from orchestrator.config.schema import ModelEntry, OrchestratorConfig

#: provider -> (key variables, default model name) for environment discovery.
ENV_PROVIDERS: dict[str, tuple[tuple[str, ...], str]] = {
    "openai": (("OPENAI_API_KEY",), "gpt-4o-mini"),
    "anthropic": (("ANTHROPIC_API_KEY",), "claude-3-5-haiku-20241022"),
    "google": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini-2.0-flash"),
}
OLLAMA_DEFAULT_HOST = "http://localhost:11434"


def _ollama_models(host: str, timeout: float = 0.5) -> Optional[list[str]]:
    """Names of the models a local Ollama serves, or ``None`` if it does not answer."""
    try:
        response = httpx.get(f"{host.rstrip('/')}/api/tags", timeout=timeout)
        response.raise_for_status()
        tags = response.json().get("models", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return [str(t["name"]) for t in tags if isinstance(t, dict) and "name" in t]


def discover_environment() -> LoadedConfig:
    """A configuration of the providers whose keys or hosts are in the
    environment. ``notes`` says what was found and what is missing."""
    entries: list[ModelEntry] = []
    notes: list[str] = []
    for provider, (variables, name) in ENV_PROVIDERS.items():
        found = next((v for v in variables if os.environ.get(v)), None)
        if found:
            entries.append(ModelEntry(provider=provider, name=name, api_key_env=found))
            notes.append(f"{provider}: using {name} ({found} is set)")
        else:
            notes.append(f"{provider}: skipped, set {' or '.join(variables)}")
    host = os.environ.get("OLLAMA_HOST") or OLLAMA_DEFAULT_HOST
    if not host.startswith(("http://", "https://")):
        host = f"http://{host}"
    names = _ollama_models(host)
    if names is None:
        notes.append(
            f"ollama: skipped, nothing answers at {host} (start Ollama or set OLLAMA_HOST)"
        )
    elif not names:
        notes.append(f"ollama: {host} answers but has no models (ollama pull llama3.2)")
    else:
        for name in names:
            entries.append(ModelEntry(provider="ollama", name=name, base_url=host))
        notes.append(f"ollama: {len(names)} model(s) at {host}")
    return LoadedConfig(OrchestratorConfig(models=entries), None, "", notes)
