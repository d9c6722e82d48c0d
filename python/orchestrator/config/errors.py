"""The configuration's error: every problem of a file, one line each.

Defined in :mod:`orchestrator.errors` (the one module of the library's
errors) and re-exported here."""

from orchestrator.errors import ConfigError, ConfigProblem

__all__ = ["ConfigError", "ConfigProblem"]
