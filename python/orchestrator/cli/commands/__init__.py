"""The commands, one module per concept; importing a module registers its commands
on :data:`orchestrator.cli.app.app`. A new command is a new module listed here."""

from orchestrator.cli.commands import (
    ask,
    budgets,
    cache,
    evaluate,
    health,
    models,
    serve,
    simulate,
    stats,
)

__all__ = ["ask", "budgets", "cache", "evaluate", "health", "models", "serve", "simulate", "stats"]
