//! `cache_key`: the canonical walk over a request's Python values, feeding
//! the core's hasher.

use orchestrator_core as core;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Where a value sits in the request, built only when hashing fails.
struct HashFailure {
    path: Vec<String>,
    error: PyErr,
}

impl HashFailure {
    fn new(error: PyErr) -> Self {
        HashFailure {
            path: Vec::new(),
            error,
        }
    }

    fn at(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

const MAX_DEPTH: usize = 64;

fn hash_value(
    h: &mut core::hash::KeyHasher,
    value: &Bound<'_, PyAny>,
    depth: usize,
) -> Result<(), HashFailure> {
    if depth > MAX_DEPTH {
        return Err(HashFailure::new(PyValueError::new_err(format!(
            "nested deeper than {MAX_DEPTH} levels"
        ))));
    }
    if value.is_none() {
        h.none();
    } else if let Ok(b) = value.cast::<PyBool>() {
        h.bool(b.is_true());
    } else if let Ok(s) = value.cast::<PyString>() {
        h.str(&s.to_cow().map_err(HashFailure::new)?);
    } else if let Ok(i) = value.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(n) => h.int(n),
            Err(_) => h.big_int(&i.str().map_err(HashFailure::new)?.to_string()),
        }
    } else if let Ok(f) = value.cast::<PyFloat>() {
        let v = f.value();
        h.float(v, "value").map_err(|_| {
            HashFailure::new(PyValueError::new_err(format!("{v} is not a finite number")))
        })?;
    } else if let Ok(b) = value.cast::<PyBytes>() {
        h.bytes(b.as_bytes());
    } else if let Ok(d) = value.cast::<PyDict>() {
        let mut entries: Vec<(String, Bound<'_, PyAny>)> = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                HashFailure::new(PyTypeError::new_err(format!(
                    "has a non-string key {}",
                    k.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
                )))
            })?;
            entries.push((key.to_cow().map_err(HashFailure::new)?.into_owned(), v));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        h.map(entries.len());
        for (k, v) in &entries {
            h.str(k);
            hash_value(h, v, depth + 1).map_err(|f| f.at(format!("[{k:?}]")))?;
        }
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let len = value.len().map_err(HashFailure::new)?;
        h.list(len);
        for (i, item) in value.try_iter().map_err(HashFailure::new)?.enumerate() {
            let item = item.map_err(HashFailure::new)?;
            hash_value(h, &item, depth + 1).map_err(|f| f.at(format!("[{i}]")))?;
        }
    } else if value.hasattr("model_dump").unwrap_or(false) {
        let kwargs = PyDict::new(value.py());
        kwargs.set_item("mode", "json").map_err(HashFailure::new)?;
        let dumped = value
            .call_method("model_dump", (), Some(&kwargs))
            .map_err(HashFailure::new)?;
        hash_value(h, &dumped, depth + 1)?;
    } else {
        let type_name = value
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        return Err(HashFailure::new(PyTypeError::new_err(format!(
            "has a value of type {type_name}; use str, int, float, bool, None, bytes, list, tuple, dict or a pydantic model"
        ))));
    }
    Ok(())
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
    let mut h = core::hash::KeyHasher::new();
    h.str(namespace);
    h.str(provider);
    h.str(model);
    let describe = |name: &str, f: HashFailure| {
        let mut path = name.to_owned();
        for seg in f.path.iter().rev() {
            path.push_str(seg);
        }
        let message = format!(
            "cannot hash {path} for a cache key: {}",
            f.error.value(prompt.py())
        );
        if f.error.is_instance_of::<PyTypeError>(prompt.py()) {
            PyTypeError::new_err(message)
        } else {
            PyValueError::new_err(message)
        }
    };
    hash_value(&mut h, prompt, 0).map_err(|f| describe("prompt", f))?;
    match params {
        Some(p) => hash_value(&mut h, p, 0).map_err(|f| describe("params", f))?,
        None => h.map(0),
    }
    Ok(core::hash::to_hex(h.finish()))
}
