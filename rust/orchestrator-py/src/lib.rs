//! `orchestrator._core`: the PyO3 layer over `orchestrator-core`. It
//! converts arguments by type (naming the field on every error), takes the
//! core's lock only around Rust work, and maps each core error to its own
//! Python exception; every decision is made in the core crate.

mod budget;
mod convert;
mod errors;
mod explanation;
mod hashing;
mod held;
mod leases;
mod request;
mod selection;
mod transition;

mod router;

use orchestrator_core as core;
use orchestrator_core::Table;
use pyo3::prelude::*;

/// `(rpm, tpm)` checked by type and range (ints >= 1 or `None`; `bool` is
/// not an int; too large names the field): the one check `Model(...)`,
/// the config and registration share.
#[pyfunction]
#[pyo3(signature = (rpm=None, tpm=None))]
fn check_rate_limits(
    rpm: Option<&Bound<'_, PyAny>>,
    tpm: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Option<u32>, Option<u64>)> {
    let limits = convert::rate_limits(rpm, tpm)?;
    Ok((limits.rpm, limits.tpm))
}

/// A model's tags checked by the rules of every entry point (a list of
/// `str` of the tag form, at most `MAX_TAGS` distinct), without repeats:
/// the one check `Model(tags=...)`, the config and registration share.
#[pyfunction]
#[pyo3(signature = (tags=None))]
fn check_tags(tags: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    convert::tags(tags, "tags")
}

/// A deployment id checked by the rules of every label (`None`, or a `str`
/// of 1 to `MAX_LABEL_BYTES` bytes without control characters) and without
/// `'@'`, which separates it from the model's name.
#[pyfunction]
#[pyo3(signature = (deployment=None))]
fn check_deployment(deployment: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let deployment = convert::optional_label(deployment, "deployment")?;
    if let Some(d) = deployment.as_deref().filter(|d| d.contains('@')) {
        return Err(convert::invalid(
            "deployment",
            format!("{d:?} (without '@', which separates it from the model's name)"),
        ));
    }
    Ok(deployment)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<selection::SelectionCore>()?;
    m.add_class::<request::Request>()?;
    m.add_class::<request::Outcome>()?;
    m.add_class::<explanation::Explanation>()?;
    m.add_class::<held::HeldTickets>()?;
    m.add_class::<transition::Transition>()?;
    m.add("NoEligible", m.py().get_type::<errors::NoEligible>())?;
    m.add_function(wrap_pyfunction!(hashing::cache_key, m)?)?;
    m.add_function(wrap_pyfunction!(check_rate_limits, m)?)?;
    m.add_function(wrap_pyfunction!(check_tags, m)?)?;
    m.add_function(wrap_pyfunction!(check_deployment, m)?)?;
    m.add_function(wrap_pyfunction!(request::check_routed_input, m)?)?;
    m.add("CAPABILITY_NAMES", core::CAPABILITY_NAMES.to_vec())?;
    m.add("ERROR_CLASSES", core::ERROR_CLASSES.to_vec())?;
    m.add(
        "STRATEGY_NAMES",
        core::strategy::STRATEGY_NAMES
            .iter()
            .map(|n| (n.name, n.strategy.name(), n.discount))
            .collect::<Vec<_>>(),
    )?;
    m.add("STATS_COLUMNS", Table::STATS_COLUMNS.to_vec())?;
    m.add("KEY_FORMAT_VERSION", core::hash::KEY_FORMAT_VERSION)?;
    m.add("DEFAULT_INPUT_TOKENS", core::table::DEFAULT_INPUT_TOKENS)?;
    m.add("DEFAULT_OUTPUT_TOKENS", core::table::DEFAULT_OUTPUT_TOKENS)?;
    m.add("MAX_SELECT_MANY", core::table::MAX_SELECT_MANY)?;
    m.add(
        "MAX_ROUTED_PROMPT_BYTES",
        core::routing::MAX_ROUTED_PROMPT_BYTES,
    )?;
    m.add(
        "MAX_OUTSTANDING_TICKETS",
        core::tickets::MAX_OUTSTANDING_TICKETS,
    )?;
    m.add(
        "DEFAULT_SESSION_TTL_S",
        core::sessions::DEFAULT_SESSION_TTL_S,
    )?;
    m.add("MAX_SESSION_TTL_S", core::sessions::MAX_SESSION_TTL_S)?;
    m.add("DEFAULT_MAX_SESSIONS", core::sessions::DEFAULT_MAX_SESSIONS)?;
    m.add("MAX_SESSIONS", core::sessions::MAX_SESSIONS)?;
    m.add(
        "MAX_REQUEST_STRING_BYTES",
        core::spec::MAX_REQUEST_STRING_BYTES,
    )?;
    m.add("MIN_DISCOUNT", core::strategy::MIN_DISCOUNT)?;
    m.add("MAX_LATENCY_S", core::outcome::MAX_LATENCY_S)?;
    m.add("MAX_COST_USD", core::outcome::MAX_COST_USD)?;
    m.add("MAX_TOKENS", core::outcome::MAX_TOKENS)?;
    m.add("RATE_LIMIT_WINDOW_S", core::limits::WINDOW_S)?;
    m.add("MAX_RPM", core::limits::MAX_RPM)?;
    m.add("MAX_LEASE_GRANTS", core::leases::MAX_GRANTS)?;
    m.add("MAX_TPM", core::limits::MAX_TPM)?;
    m.add("MAX_TAGS", core::table::tags::MAX_TAGS)?;
    m.add("MAX_ALIAS_MEMBERS", core::table::groups::MAX_ALIAS_MEMBERS)?;
    m.add("MAX_LABEL_BYTES", convert::MAX_LABEL_BYTES)?;
    m.add("NANOS_PER_USD", core::budgets::NANOS_PER_USD)?;
    m.add("MAX_BUDGETS", core::budgets::MAX_BUDGETS)?;
    m.add("MAX_BUDGET_LIMIT_USD", core::budgets::MAX_LIMIT_USD)?;
    m.add(
        "MAX_BUDGET_RETRY_IN_S",
        core::budgets::MAX_BUDGET_RETRY_IN_S,
    )?;
    m.add("BUDGET_PERIODS", core::budgets::PERIOD_NAMES.to_vec())?;
    m.add("BUDGET_SCOPES", budget::SCOPE_KINDS.to_vec())?;
    m.add("RECENT_LATENCIES", core::stats::RECENT_LATENCIES)?;
    m.add("BASELINE_LATENCIES", core::stats::BASELINE_LATENCIES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    router::register(m)?;
    Ok(())
}
