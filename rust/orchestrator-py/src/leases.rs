//! Conversions for the lease thread's calls on `SelectionCore` (rate limits
//! shared across workers: `orchestrator.models.shared_leases`).

use orchestrator_core::limits::{LimitKind, SharedWindowState};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;

/// `"requests"` or `"tokens"`, nothing else.
pub fn kind(value: &Bound<'_, PyAny>) -> PyResult<LimitKind> {
    match convert::text(value, "kind")?.as_str() {
        "requests" => Ok(LimitKind::Requests),
        "tokens" => Ok(LimitKind::Tokens),
        other => Err(convert::invalid(
            "kind",
            format!("{other:?} (\"requests\" or \"tokens\")"),
        )),
    }
}

/// A grant id or amount: an integer from `min` to 2**53 (what Redis
/// integers and Lua numbers hold exactly).
pub fn count(value: &Bound<'_, PyAny>, field: &str, min: i128) -> PyResult<u64> {
    Ok(convert::integer(value, field, min, 1 << 53)? as u64)
}

/// A slot's leases as a dict for the lease thread.
pub fn state_dict<'py>(py: Python<'py>, s: &SharedWindowState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, lease) in [("requests", &s.requests), ("tokens", &s.tokens)] {
        d.set_item(format!("{name}_available"), lease.available)?;
        d.set_item(format!("{name}_grants"), lease.grants)?;
        d.set_item(format!("{name}_debt"), lease.debt)?;
        d.set_item(format!("{name}_wanted"), lease.wanted)?;
    }
    d.set_item("fallback", s.fallback.map(|f| (f.rpm, f.tpm)))?;
    d.set_item("unrecorded", s.unrecorded)?;
    Ok(d)
}
