//! Tickets held for the task that selected them.
//!
//! `select_model` returns only the model; its ticket waits in a context
//! variable until that model's next measured call in the same task (or
//! thread) takes it. The variable holds an immutable `HeldTickets`, keyed by
//! core and slot, replaced on every change, so tasks never see each other's.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

static NEXT_CORE_ID: AtomicU64 = AtomicU64::new(1);
static HELD: PyOnceLock<Variable> = PyOnceLock::new();

/// The context variable's bound `get` and `set`, looked up once.
struct Variable {
    get: Py<PyAny>,
    set: Py<PyAny>,
}

/// A number no other core of this process has.
pub fn new_core_id() -> u64 {
    NEXT_CORE_ID.fetch_add(1, Ordering::Relaxed)
}

/// The held tickets of one context: `(core id, slot, ticket)`.
#[pyclass(frozen, module = "orchestrator._core")]
pub struct HeldTickets {
    entries: Vec<(u64, u32, u64)>,
}

#[pymethods]
impl HeldTickets {
    fn __len__(&self) -> usize {
        self.entries.len()
    }
}

fn variable(py: Python<'_>) -> PyResult<&Variable> {
    HELD.get_or_try_init(py, || -> PyResult<Variable> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("default", py.None())?;
        let var = py
            .import("contextvars")?
            .getattr("ContextVar")?
            .call(("orchestrator_tickets",), Some(&kwargs))?;
        Ok(Variable {
            get: var.getattr("get")?.unbind(),
            set: var.getattr("set")?.unbind(),
        })
    })
}

fn current(py: Python<'_>) -> PyResult<Option<Py<HeldTickets>>> {
    let value = variable(py)?.get.bind(py).call0()?;
    Ok(value.cast_into::<HeldTickets>().ok().map(Bound::unbind))
}

fn replace(py: Python<'_>, entries: Vec<(u64, u32, u64)>) -> PyResult<()> {
    let set = variable(py)?.set.bind(py);
    if entries.is_empty() {
        set.call1((py.None(),))?;
    } else {
        set.call1((HeldTickets { entries },))?;
    }
    Ok(())
}

/// Hold `ticket` for this context; returns the ticket it supersedes (an
/// earlier unused selection of the same model), which the caller releases.
pub fn hold(py: Python<'_>, core: u64, slot: u32, ticket: u64) -> PyResult<Option<u64>> {
    let mut entries = Vec::with_capacity(1);
    let mut superseded = None;
    if let Some(held) = current(py)? {
        for &(c, s, t) in &held.get().entries {
            if c == core && s == slot {
                superseded = Some(t);
            } else {
                entries.push((c, s, t));
            }
        }
    }
    entries.push((core, slot, ticket));
    replace(py, entries)?;
    Ok(superseded)
}

/// Take this context's held ticket for `slot` of `core`, if any.
pub fn take(py: Python<'_>, core: u64, slot: u32) -> PyResult<Option<u64>> {
    let Some(held) = current(py)? else {
        return Ok(None);
    };
    let entries = &held.get().entries;
    let Some(pos) = entries.iter().position(|&(c, s, _)| c == core && s == slot) else {
        return Ok(None);
    };
    let ticket = entries[pos].2;
    let rest = entries
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != pos)
        .map(|(_, e)| *e)
        .collect();
    replace(py, rest)?;
    Ok(Some(ticket))
}
