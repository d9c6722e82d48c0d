//! `cache_key`: a request's Python values written to the core's canonical
//! encoder. Only conversion happens here; which values are accepted, how maps
//! are ordered and how deep values may nest are the core's rules
//! (`orchestrator_core::hash`).

use std::borrow::Cow;

use orchestrator_core::hash::{self, Canonical, Encoder, Unhashable};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A Python error met while converting, as the core's failure (a
/// `TypeError` stays a type error).
fn failed(err: PyErr) -> Unhashable {
    Python::attach(|py| {
        let reason = err.value(py).to_string();
        if err.is_instance_of::<PyTypeError>(py) {
            Unhashable::wrong_type(reason)
        } else {
            Unhashable::bad_value(reason)
        }
    })
}

/// A Python value of a request, as the core's encoder takes it.
struct Value<'py>(Bound<'py, PyAny>);

impl Canonical for Value<'_> {
    fn write(&self, out: &mut Encoder) -> Result<(), Unhashable> {
        let value = &self.0;
        if value.is_none() {
            out.none();
        } else if let Ok(b) = value.cast::<PyBool>() {
            out.bool(b.is_true());
        } else if let Ok(s) = value.cast::<PyString>() {
            out.str(&s.to_cow().map_err(failed)?);
        } else if let Ok(i) = value.cast::<PyInt>() {
            match i.extract::<i64>() {
                Ok(n) => out.int(n),
                Err(_) => out.integer(&i.str().map_err(failed)?.to_cow().map_err(failed)?)?,
            }
        } else if let Ok(f) = value.cast::<PyFloat>() {
            out.float(f.value())?;
        } else if let Ok(b) = value.cast::<PyBytes>() {
            out.bytes(b.as_bytes());
        } else if let Ok(d) = value.cast::<PyDict>() {
            let mut entries = Vec::with_capacity(d.len());
            for (k, v) in d.iter() {
                let Ok(key) = k.cast::<PyString>() else {
                    let shown = k.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string());
                    return Err(Unhashable::wrong_type(format!(
                        "has a non-string key {shown}"
                    )));
                };
                let key = Cow::Owned(key.to_cow().map_err(failed)?.into_owned());
                entries.push((key, Value(v)));
            }
            out.map(&mut entries)?;
        } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            let len = value.len().map_err(failed)?;
            let items = value.try_iter().map_err(failed)?;
            out.list(len, items.map(|item| item.map(Value).map_err(failed)))?;
        } else if value.hasattr("model_dump").unwrap_or(false) {
            // A pydantic model is its JSON dump, at its own depth.
            let kwargs = PyDict::new(value.py());
            kwargs.set_item("mode", "json").map_err(failed)?;
            let dumped = value
                .call_method("model_dump", (), Some(&kwargs))
                .map_err(failed)?;
            Value(dumped).write(out)?;
        } else {
            let type_name = value
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            return Err(Unhashable::wrong_type(format!(
                "has a value of type {type_name}; use str, int, float, bool, None, bytes, list, tuple, dict or a pydantic model"
            )));
        }
        Ok(())
    }
}

/// A stable 128-bit cache key, as 32 hex digits, over the model identity,
/// the prompt or messages, every generation parameter and the namespace.
/// Keyword order does not matter; `-0.0 == 0.0`; NaN is refused.
#[pyfunction]
#[pyo3(signature = (model, provider, prompt, params=None, namespace=""))]
pub fn cache_key(
    model: &str,
    provider: &str,
    prompt: &Bound<'_, PyAny>,
    params: Option<&Bound<'_, PyAny>>,
    namespace: &str,
) -> PyResult<String> {
    let prompt = Value(prompt.clone());
    let params = params.map(|p| Value(p.clone()));
    match hash::cache_key(namespace, provider, model, &prompt, params.as_ref()) {
        Ok(key) => Ok(hash::to_hex(key)),
        Err(failure) if failure.wrong_type => Err(PyTypeError::new_err(failure.to_string())),
        Err(failure) => Err(PyValueError::new_err(failure.to_string())),
    }
}
