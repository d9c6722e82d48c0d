//! Spend budgets across the boundary: a budget's declaration converted by
//! type, and its state as a dict.

use orchestrator_core::budgets::{BudgetSpec, BudgetState, Period, Scope, NANOS_PER_USD};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::errors::to_py;

/// The scope kinds a budget may name, in the order `Scope` lists them.
pub const SCOPE_KINDS: [&str; 4] = ["model", "provider", "tag", "tenant"];

/// A budget's declaration, converted and validated by the core's rules.
pub fn spec(
    name: &Bound<'_, PyAny>,
    scope: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    limit_usd: &Bound<'_, PyAny>,
    period: &Bound<'_, PyAny>,
) -> PyResult<BudgetSpec> {
    let kind = convert::label(scope, "scope")?;
    let value = convert::label(value, "scope value")?;
    let scope = match kind.as_str() {
        "model" => Scope::Model(value),
        "provider" => Scope::Provider(value),
        "tag" => Scope::Tag(value),
        "tenant" => Scope::Tenant(value),
        other => {
            return Err(convert::invalid(
                "scope",
                format!("{other:?} (one of {})", SCOPE_KINDS.join(", ")),
            ))
        }
    };
    let spec = BudgetSpec {
        name: convert::label(name, "name")?,
        scope,
        limit_usd: convert::real(limit_usd, "limit_usd")?,
        period: Period::from_name(&convert::label(period, "period")?).map_err(to_py)?,
    };
    spec.validate().map_err(to_py)?;
    Ok(spec)
}

fn usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD as f64
}

/// One budget's state: its declaration, USD figures (and the exact
/// nano-USD ones), and when its period resets.
pub fn state<'py>(py: Python<'py>, s: &BudgetState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &s.spec.name)?;
    d.set_item("scope", s.spec.scope.kind())?;
    d.set_item("value", s.spec.scope.value())?;
    d.set_item("period", s.spec.period.name())?;
    d.set_item("limit_usd", s.spec.limit_usd)?;
    d.set_item("spent_usd", usd(s.spent))?;
    d.set_item("reserved_usd", usd(s.reserved))?;
    d.set_item("remaining_usd", usd(s.remaining()))?;
    d.set_item("remaining_nanos", s.remaining())?;
    d.set_item("limit_nanos", s.limit)?;
    d.set_item("allowance_nanos", s.allowance)?;
    d.set_item("spent_nanos", s.spent)?;
    d.set_item("reserved_nanos", s.reserved)?;
    d.set_item("resets_at", s.resets_at_unix)?;
    d.set_item("resets_in", s.resets_in_s)?;
    Ok(d)
}
