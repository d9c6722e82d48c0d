//! Python values to Rust values, by type, naming the field on every error.
//!
//! Every entry point converts its arguments with these functions before the
//! core's lock is taken: this is where caller code (iterators, `__index__`,
//! `__float__`) runs, never under the lock. A `bool` is not a number, a
//! string is not a sequence of names, a float is not an integer, and a number
//! too large for its field is a `ValueError` naming the field.

use orchestrator_core as core;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{
    PyKeyError, PyOverflowError, PyTypeError, PyUnicodeEncodeError, PyValueError,
};

use crate::errors::to_py;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn shown(value: &Bound<'_, PyAny>) -> String {
    let text = value
        .repr()
        .map_or_else(|_| format!("<{}>", type_name(value)), |r| r.to_string());
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn wrong_type(field: &str, value: &Bound<'_, PyAny>, expected: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "invalid {field}: {} ({expected}, got {})",
        shown(value),
        type_name(value)
    ))
}

fn out_of_range(field: &str, value: &Bound<'_, PyAny>, range: &str) -> PyErr {
    PyValueError::new_err(format!("invalid {field}: {} ({range})", shown(value)))
}

/// A real number: an int or float (or an object with `__float__`, such as
/// a numpy scalar), not a bool or a string. Range checks are the core's.
pub fn real(value: &Bound<'_, PyAny>, field: &str) -> PyResult<f64> {
    if let Ok(f) = value.cast_exact::<PyFloat>() {
        return Ok(f.value());
    }
    if value.is_instance_of::<PyBool>()
        || value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyBytes>()
    {
        return Err(wrong_type(field, value, "a number is required"));
    }
    value.extract::<f64>().map_err(|err| {
        if err.is_instance_of::<PyOverflowError>(value.py()) {
            out_of_range(field, value, "too large for a float")
        } else if err.is_instance_of::<PyTypeError>(value.py()) {
            wrong_type(field, value, "a number is required")
        } else {
            err // the caller's own __float__ failed: its error, unchanged
        }
    })
}

/// `None` or a real number.
pub fn optional_real(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<f64>> {
    match value {
        Some(v) if !v.is_none() => real(v, field).map(Some),
        _ => Ok(None),
    }
}

/// An integer in `[min, max]`: an int (or an object with `__index__`), not
/// a bool, float or string.
pub fn integer(value: &Bound<'_, PyAny>, field: &str, min: i128, max: i128) -> PyResult<i128> {
    if let Ok(int) = value.cast_exact::<PyInt>() {
        if let Ok(n) = int.extract::<i64>() {
            let n = i128::from(n);
            return if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(out_of_range(
                    field,
                    value,
                    &format!("an integer from {min} to {max}"),
                ))
            };
        }
    }
    if value.is_instance_of::<PyBool>()
        || value.is_instance_of::<PyFloat>()
        || value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyBytes>()
    {
        return Err(wrong_type(field, value, "an integer is required"));
    }
    let range = || format!("an integer from {min} to {max}");
    // i64 first: extracting an i128 takes CPython's slow byte-array path.
    let n = match value
        .extract::<i64>()
        .map(i128::from)
        .or_else(|_| value.extract::<i128>())
    {
        Ok(n) => n,
        Err(err) if err.is_instance_of::<PyOverflowError>(value.py()) => {
            return Err(out_of_range(field, value, &range()))
        }
        Err(err) if err.is_instance_of::<PyTypeError>(value.py()) => {
            return Err(wrong_type(field, value, "an integer is required"))
        }
        Err(err) => return Err(err), // the caller's own __index__ failed
    };
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(out_of_range(field, value, &range()))
    }
}

/// An integer that fits `u64`, at least `min`.
pub fn count(value: &Bound<'_, PyAny>, field: &str, min: u64) -> PyResult<u64> {
    integer(value, field, i128::from(min), i128::from(u64::MAX)).map(|n| n as u64)
}

/// An integer that fits `u32`, at least `min`.
pub fn count32(value: &Bound<'_, PyAny>, field: &str, min: u32) -> PyResult<u32> {
    integer(value, field, i128::from(min), i128::from(u32::MAX)).map(|n| n as u32)
}

/// `None` or an integer that fits `u32`, at least `min`.
pub fn optional_count32(
    value: Option<&Bound<'_, PyAny>>,
    field: &str,
    min: u32,
) -> PyResult<Option<u32>> {
    match value {
        Some(v) if !v.is_none() => count32(v, field, min).map(Some),
        _ => Ok(None),
    }
}

/// `None` or an integer in `[min, max]`.
pub fn optional_integer(
    value: Option<&Bound<'_, PyAny>>,
    field: &str,
    min: i128,
    max: i128,
) -> PyResult<Option<i128>> {
    match value {
        Some(v) if !v.is_none() => integer(v, field, min, max).map(Some),
        _ => Ok(None),
    }
}

/// A model's `rpm` and `tpm` (`None`: unlimited), each within the core's range.
pub fn rate_limits(
    rpm: Option<&Bound<'_, PyAny>>,
    tpm: Option<&Bound<'_, PyAny>>,
) -> PyResult<core::RateLimits> {
    let limits = core::RateLimits {
        rpm: optional_integer(rpm, "rpm", 1, i128::from(core::limits::MAX_RPM))?.map(|n| n as u32),
        tpm: optional_integer(tpm, "tpm", 1, i128::from(core::limits::MAX_TPM))?.map(|n| n as u64),
    };
    limits.validate().map_err(to_py)?;
    Ok(limits)
}

/// `True` or `False`, nothing else.
pub fn boolean(value: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    match value.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(wrong_type(field, value, "True or False is required")),
    }
}

/// A string.
pub fn string(value: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(wrong_type(field, value, "a string is required")),
    }
}

/// The items of a list, tuple or other iterable (not a string or bytes),
/// each converted by `item`.
pub fn each<T>(
    value: &Bound<'_, PyAny>,
    field: &str,
    mut item: impl FnMut(&Bound<'_, PyAny>, &str) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        return Err(wrong_type(field, value, "a list is required, not a string"));
    }
    if let Ok(list) = value.cast::<PyList>() {
        let items: Vec<Bound<'_, PyAny>> = list.iter().collect();
        return items.iter().map(|v| item(v, field)).collect();
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return tuple.iter().map(|v| item(&v, field)).collect();
    }
    let iter = value
        .try_iter()
        .map_err(|_| wrong_type(field, value, "a list is required"))?;
    let mut out = Vec::new();
    for v in iter {
        out.push(item(&v?, field)?);
    }
    Ok(out)
}

/// `None` or a list of capability names, as the core's bit mask.
pub fn capabilities(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<u32> {
    let Some(v) = value.filter(|v| !v.is_none()) else {
        return Ok(0);
    };
    let bits = each(v, field, |item, field| match item.cast::<PyString>() {
        Ok(name) => core::capability_mask([name.to_cow()?.as_ref()]).map_err(to_py),
        Err(_) => Err(wrong_type(field, item, "a string is required")),
    })?;
    Ok(bits.into_iter().fold(0, |mask, bit| mask | bit))
}

/// The longest label (a tag, alias, deployment id, tenant or budget name),
/// in UTF-8 bytes: the core's rule.
pub const MAX_LABEL_BYTES: usize = core::error::MAX_LABEL_BYTES;

/// A label a request or a model declares (a tag, an alias, a deployment
/// id): exactly a `str` (not bytes, not a subclass that could compare or
/// hash as something else), non-empty, at most [`MAX_LABEL_BYTES`] bytes of
/// UTF-8, without control characters.
pub fn label(value: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    if value.cast_exact::<PyString>().is_err() {
        return Err(wrong_type(field, value, "a str is required"));
    }
    let text = text(value, field)?;
    if core::error::label_problem(&text).is_some() {
        return Err(out_of_range(
            field,
            value,
            &format!("1 to {MAX_LABEL_BYTES} bytes of UTF-8 without control characters"),
        ));
    }
    Ok(text)
}

/// `None` or a label.
pub fn optional_label(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<String>> {
    match value {
        Some(v) if !v.is_none() => label(v, field).map(Some),
        _ => Ok(None),
    }
}

/// `None` or a list of tag names (each a label of the core's tag form),
/// without repeats, at most `core::table::tags::MAX_TAGS` of them.
pub fn tags(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Vec<String>> {
    let Some(v) = value.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in each(v, field, label)? {
        core::table::tags::check_tag(&tag).map_err(|err| match err {
            core::CoreError::Invalid { value, .. } => invalid(field, value),
            other => to_py(other),
        })?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > core::table::tags::MAX_TAGS {
        return Err(out_of_range(
            field,
            v,
            &format!(
                "{} distinct tags, at most {} are possible",
                tags.len(),
                core::table::tags::MAX_TAGS
            ),
        ));
    }
    Ok(tags)
}

/// `None` or a list of strings.
pub fn names(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Vec<String>> {
    match value {
        Some(v) if !v.is_none() => each(v, field, string),
        _ => Ok(Vec::new()),
    }
}

/// `None` or a list converted item by item.
pub fn optional_each<T>(
    value: Option<&Bound<'_, PyAny>>,
    field: &str,
    item: impl FnMut(&Bound<'_, PyAny>, &str) -> PyResult<T>,
) -> PyResult<Option<Vec<T>>> {
    match value {
        Some(v) if !v.is_none() => each(v, field, item).map(Some),
        _ => Ok(None),
    }
}

/// A core error about one field, with the field's Python spelling.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("invalid {field}: {message}"))
}

/// A string that is valid Unicode: a lone surrogate (which JSON decoders
/// pass on) is a `ValueError` naming the field, not a bare encoding error.
pub fn text(value: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    string(value, field).map_err(|err| {
        if err.is_instance_of::<PyUnicodeEncodeError>(value.py()) {
            PyValueError::new_err(format!(
                "invalid {field}: not valid Unicode (a lone surrogate?): {err}"
            ))
        } else {
            err
        }
    })
}

/// A request's optional string field (`session_id`): `None`, or exactly a
/// `str` (not bytes, not a subclass) that passes the core's rule
/// ([`core::spec::check_request_string`]).
pub fn request_string(
    value: Option<&Bound<'_, PyAny>>,
    field: &'static str,
) -> PyResult<Option<String>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if value.cast_exact::<PyString>().is_err() {
        return Err(wrong_type(field, value, "a str is required"));
    }
    let text = text(value, field)?;
    core::spec::check_request_string(field, &text).map_err(to_py)?;
    Ok(Some(text))
}

/// A caller's embedding: a one-dimensional float32 buffer (a numpy
/// `float32` array) of finite values; `None` (absent or Python `None`) is none.
pub fn embedding_values(embedding: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<f32>>> {
    let Some(object) = embedding.filter(|e| !e.is_none()) else {
        return Ok(None);
    };
    let buffer = PyBuffer::<f32>::get(object).map_err(|_| {
        PyTypeError::new_err(format!(
            "invalid embedding: a one-dimensional float32 array (numpy.float32) is required, got {}",
            type_name(object)
        ))
    })?;
    if buffer.dimensions() != 1 {
        return Err(PyValueError::new_err(format!(
            "invalid embedding: {} dimensions, expected 1",
            buffer.dimensions()
        )));
    }
    let values = buffer.to_vec(object.py())?;
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "invalid embedding: component {bad} is {} (values must be finite)",
            values[bad]
        )));
    }
    Ok(Some(values))
}

/// The bytes of a saved router state (`bytes` only), or a TypeError naming `state`.
pub fn state_bytes<'a>(state: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    state
        .cast::<PyBytes>()
        .map(|b| b.as_bytes())
        .map_err(|_| wrong_type("state", state, "bytes from router_state() are required"))
}

/// The prompt as text, at most `limit` bytes (cut on a character
/// boundary): a string, or chat messages (mappings whose `content` is a
/// string or `None`) joined by newlines. Messages past the limit are not read.
pub fn prompt_text(prompt: &Bound<'_, PyAny>, limit: usize) -> PyResult<String> {
    let bounded = |mut joined: String| {
        if joined.len() > limit {
            let mut end = limit;
            while !joined.is_char_boundary(end) {
                end -= 1;
            }
            joined.truncate(end);
        }
        joined
    };
    if prompt.is_instance_of::<PyString>() {
        return text(prompt, "prompt").map(bounded);
    }
    // Bytes-like values iterate as integers: name them, not their first byte.
    if prompt.is_instance_of::<PyBytes>()
        || prompt.is_instance_of::<PyByteArray>()
        || prompt.is_instance_of::<PyMemoryView>()
    {
        return Err(wrong_type(
            "prompt",
            prompt,
            "a string or a list of chat messages is required",
        ));
    }
    let mut joined = String::new();
    let iterator = prompt.try_iter().map_err(|_| {
        wrong_type(
            "prompt",
            prompt,
            "a string or a list of chat messages is required",
        )
    })?;
    // Each message counts at least one byte (its separator) against the
    // limit, so an endless run of empty messages ends like a long text.
    for (read, message) in iterator.enumerate() {
        if joined.len() > limit || read > limit {
            break;
        }
        let message = message?;
        let content = message.get_item("content").map_err(|err| {
            // No "content" (KeyError) or not subscriptable by it (TypeError);
            // any other exception is the message's own and propagates as is.
            let py = message.py();
            if err.is_instance_of::<PyKeyError>(py) || err.is_instance_of::<PyTypeError>(py) {
                wrong_type(
                    "prompt",
                    &message,
                    "chat messages must be mappings with a \"content\" string",
                )
            } else {
                err
            }
        })?;
        if content.is_none() {
            continue;
        }
        if !content.is_instance_of::<PyString>() {
            return Err(wrong_type(
                "prompt",
                &content,
                "a message's \"content\" must be a string",
            ));
        }
        if !joined.is_empty() {
            joined.push('\n');
        }
        joined.push_str(&text(&content, "prompt")?);
    }
    Ok(bounded(joined))
}
