"""Spend budgets: what a budget covers (:class:`BudgetScope`) and what a
registry reports of one (:class:`BudgetState`).

Budgets are kept and enforced in the Rust core, in integer nano-USD per
calendar UTC period (see ``ModelRegistry.add_budget`` and the README's
"Spend budgets"); these are the typed views of them in Python.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, model_validator

from orchestrator import _core

__all__ = ["BudgetPeriod", "BudgetScope", "BudgetState"]

#: A budget's calendar period, in UTC.
BudgetPeriod = Literal["minute", "hour", "day", "month"]


class BudgetScope(BaseModel):
    """What one budget covers: exactly one of a ``model`` (every deployment
    serving that model name), a ``provider``, a ``tag`` or a ``tenant``
    (requests made with ``tenant=``, on any model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    model: Optional[str] = None
    provider: Optional[str] = None
    tag: Optional[str] = None
    tenant: Optional[str] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetScope:
        given = [k for k in _core.BUDGET_SCOPES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a budget scope names exactly one of model=, provider=, tag=, tenant= "
                f"(got {', '.join(given) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        """``"model"``, ``"provider"``, ``"tag"`` or ``"tenant"``."""
        return next(k for k in _core.BUDGET_SCOPES if getattr(self, k) is not None)

    @property
    def value(self) -> str:
        """The model, provider, tag or tenant named."""
        value: str = getattr(self, self.kind)
        return value

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


class BudgetState(BaseModel):
    """One budget as of now. ``spent_usd`` is this period's spend, ``reserved_usd``
    the expected cost of selections still in flight, ``remaining_usd`` what
    a new request may still reserve; the ``*_nanos`` fields are the exact
    integer figures (nano-USD) the core keeps. ``allowance_nanos`` is the
    share of the limit this registry may spend (set for budgets shared across
    workers), ``None`` when the whole limit is local. ``fleet_nanos`` /
    ``fleet_usd``: the whole fleet's spend in the period as Redis counts it
    (each worker's unused lease included until returned), read by
    ``registry.budgets(fleet=True)`` with shared state, else ``None``."""

    model_config = ConfigDict(frozen=True)

    name: str
    scope: BudgetScope
    period: BudgetPeriod
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    limit_nanos: int
    spent_nanos: int
    reserved_nanos: int
    remaining_nanos: int
    allowance_nanos: Optional[int]
    resets_at: datetime.datetime
    resets_in: float
    fleet_nanos: Optional[int] = None
    fleet_usd: Optional[float] = None

    @classmethod
    def of(cls, raw: dict[str, Any], fleet_nanos: Optional[int] = None) -> BudgetState:
        """The state the core reports (``SelectionCore.budgets()``), with the
        fleet's spend when known."""
        return cls(
            fleet_nanos=fleet_nanos,
            fleet_usd=None if fleet_nanos is None else fleet_nanos / _core.NANOS_PER_USD,
            name=raw["name"],
            scope=BudgetScope(**{raw["scope"]: raw["value"]}),
            period=raw["period"],
            limit_usd=raw["limit_usd"],
            spent_usd=raw["spent_usd"],
            reserved_usd=raw["reserved_usd"],
            remaining_usd=raw["remaining_usd"],
            remaining_nanos=raw["remaining_nanos"],
            limit_nanos=raw["limit_nanos"],
            spent_nanos=raw["spent_nanos"],
            reserved_nanos=raw["reserved_nanos"],
            allowance_nanos=raw["allowance_nanos"],
            resets_at=datetime.datetime.fromtimestamp(raw["resets_at"], datetime.UTC),
            resets_in=raw["resets_in"],
        )
