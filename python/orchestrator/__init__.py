"""orchestrator: pick the right LLM for each request, fast, learning from every call.

Installed as the ``orchestrator-router`` distribution; imported as ``orchestrator``.
"""

from importlib.metadata import PackageNotFoundError, version

#: The distribution's name on the package index (the import name is ``orchestrator``).
DISTRIBUTION = "orchestrator-router"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
