//! A breaker's change of state, as a Python enum instead of an integer code.

use orchestrator_core as core;
use pyo3::prelude::*;

/// How one call moved a model's circuit breaker. Reporting returns `None`
/// when the breaker did not change.
#[pyclass(eq, frozen, hash, module = "orchestrator._core")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    #[pyo3(name = "OPENED")]
    Opened,
    #[pyo3(name = "HALF_OPENED")]
    HalfOpened,
    #[pyo3(name = "CLOSED")]
    Closed,
}

impl Transition {
    /// The Python value of a core transition: `None` when nothing changed.
    pub fn of(transition: core::Transition) -> Option<Transition> {
        match transition {
            core::Transition::None => None,
            core::Transition::Opened => Some(Transition::Opened),
            core::Transition::HalfOpened => Some(Transition::HalfOpened),
            core::Transition::Closed => Some(Transition::Closed),
        }
    }

    fn core(self) -> core::Transition {
        match self {
            Transition::Opened => core::Transition::Opened,
            Transition::HalfOpened => core::Transition::HalfOpened,
            Transition::Closed => core::Transition::Closed,
        }
    }
}

#[pymethods]
impl Transition {
    /// The state moved to, as health callbacks name it: `"opened"`,
    /// `"half_open"` or `"closed"`.
    #[getter]
    fn state(&self) -> &'static str {
        self.core()
            .state_name()
            .expect("every Python transition is a change of state")
    }
}
