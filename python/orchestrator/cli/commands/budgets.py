"""``orchestrator budgets``: the spend budgets of the configuration, what each
covers, its limit per calendar UTC period, spend and reset time."""

from __future__ import annotations

from orchestrator.cli import context
from orchestrator.cli.app import app
from orchestrator.cli.output import console, money, print_table, table


@app.command()
def budgets() -> None:
    """List the spend budgets ([[budgets]] in the configuration).

    Spent and reserved are this process's registry's: a fresh one starts each
    period at $0.
    """
    registry = context.registry()
    states = registry.budgets()
    if not states:
        console.print(
            "no budgets configured: add a [[budgets]] table "
            '(provider = "openai", limit_usd = 5.0, period = "day") to the configuration'
        )
        return
    rows = table(
        f"{len(states)} budgets (calendar periods, UTC)",
        ["name", "scope", "period", "limit", "spent", "reserved", "remaining", "resets at"],
        numeric=["limit", "spent", "reserved", "remaining"],
    )
    for state in states:
        rows.add_row(
            state.name,
            str(state.scope),
            state.period,
            money(state.limit_usd),
            money(state.spent_usd),
            money(state.reserved_usd),
            money(state.remaining_usd),
            state.resets_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    print_table(rows)
