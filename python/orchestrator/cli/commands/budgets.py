"""``orchestrator budgets``: the spend budgets of the configuration, what each
covers, its limit per calendar UTC period, spend and reset time, and with
shared state (``[state]``) what the whole fleet spent in the period."""

from __future__ import annotations

from typing import Optional

from orchestrator.cli import context
from orchestrator.cli.app import EXIT_FAILED, CLIError, app
from orchestrator.cli.output import console, money, print_table, table
from orchestrator.config import state_url_of
from orchestrator.core.budgets import BudgetState
from orchestrator.errors import SharedStateError
from orchestrator.models.shared_state import read_fleet_budgets


@app.command()
def budgets() -> None:
    """List the spend budgets ([[budgets]] in the configuration).

    Spent and reserved are this process's registry's: a fresh one starts each
    period at $0. With shared state ([state]), "fleet spent" is what Redis
    counts for the whole fleet in the period (each worker's unused lease
    included until it returns it); it is read without joining the fleet.
    """
    loaded = context.load()
    registry = context.registry(local=True)
    try:
        states = registry.budgets()
    finally:
        registry.close()
    if not states:
        console.print(
            "no budgets configured: add a [[budgets]] table "
            '(provider = "openai", limit_usd = 5.0, period = "day") to the configuration'
        )
        return
    url = "local" if loaded.path is None else state_url_of(loaded)
    fleet: Optional[dict[str, int]] = None
    if url != "local":
        periods = [(s.name, round(s.resets_at.timestamp())) for s in states]
        try:
            fleet = read_fleet_budgets(url, loaded.config.state.namespace, periods)
        except SharedStateError as exc:
            raise CLIError(str(exc), EXIT_FAILED) from None
    print_budgets(states, fleet)


def print_budgets(states: list[BudgetState], fleet: Optional[dict[str, int]]) -> None:
    """The budgets' table, with the fleet's spend (nano-USD by name) when read."""
    columns = ["name", "scope", "period", "limit", "spent", "reserved", "remaining"]
    columns += [] if fleet is None else ["fleet spent"]
    rows = table(
        f"{len(states)} budgets (calendar periods, UTC)",
        [*columns, "resets at"],
        numeric=[c for c in columns if c not in ("name", "scope", "period")],
    )
    for state in states:
        fleet_cell = [] if fleet is None else [money(fleet[state.name] / 1e9)]
        rows.add_row(
            state.name,
            str(state.scope),
            state.period,
            money(state.limit_usd),
            money(state.spent_usd),
            money(state.reserved_usd),
            money(state.remaining_usd),
            *fleet_cell,
            state.resets_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    print_table(rows)
