//! The core's errors as Python exceptions.
//!
//! Each distinct core error is a distinct class of `orchestrator.errors`
//! (imported the first time one is raised), so Python code catches by type
//! and never parses a message. Invalid arguments stay `ValueError`/`TypeError`
//! and name the field and the value.

use orchestrator_core::CoreError;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;

pyo3::import_exception!(orchestrator.errors, StaleTicketError);
pyo3::import_exception!(orchestrator.errors, UnknownSlotError);
pyo3::import_exception!(orchestrator.errors, DuplicateModelError);
pyo3::import_exception!(orchestrator.errors, UnknownRequestError);

pyo3::create_exception!(
    orchestrator._core,
    NoEligible,
    pyo3::exceptions::PyException,
    "No registered model satisfies a request; args are the core's Explanation and the Request (the registry turns them into NoEligibleModelsError)."
);

/// The Python exception for a core error.
pub fn to_py(err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::StaleTicket(_) => StaleTicketError::new_err(message),
        CoreError::UnknownSlot(_) => UnknownSlotError::new_err(message),
        CoreError::DuplicateModel(_) | CoreError::NameInUse { .. } => {
            DuplicateModelError::new_err(message)
        }
        CoreError::UnknownModel(_) | CoreError::UnknownAlias(_) => PyKeyError::new_err(message),
        CoreError::UnknownRequest { .. } => UnknownRequestError::new_err(message),
        CoreError::Unhashable { .. } => pyo3::exceptions::PyTypeError::new_err(message),
        CoreError::Invalid { .. } | CoreError::UnknownCapability(_) => {
            PyValueError::new_err(message)
        }
    }
}
