//! `orchestrator._core`: a thin PyO3 layer over `orchestrator-core`. It only
//! converts arguments and results; every decision is made in the core crate.

mod router;

use orchestrator_core as core;
use orchestrator_core::{
    BreakerConfig, Constraints, CoreError, ModelSpec, Outcome, RewardWeights, Strategy,
    StrategyConfig, Table, Verdict,
};
use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

fn to_py(err: CoreError) -> PyErr {
    match err {
        CoreError::UnknownModel(_) => PyKeyError::new_err(err.to_string()),
        CoreError::Unhashable { .. } => PyTypeError::new_err(err.to_string()),
        _ => PyValueError::new_err(err.to_string()),
    }
}

fn parse_strategy(name: &str) -> PyResult<Strategy> {
    match name {
        "ucb" | "discounted_ucb" => Ok(Strategy::Ucb),
        "thompson" => Ok(Strategy::Thompson),
        "cost" | "cost_based" => Ok(Strategy::CostBased),
        "performance" => Ok(Strategy::Performance),
        other => Err(PyValueError::new_err(format!(
            "invalid strategy: {other:?}; choose one of \"ucb\", \"thompson\", \"cost\", \"performance\""
        ))),
    }
}

fn count(field: &'static str, value: i64) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| to_py(CoreError::invalid(field, value)))
}

fn capability_mask(capabilities: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    let Some(caps) = capabilities else {
        return Ok(0);
    };
    if caps.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "capabilities must be a list of capability names, not a string",
        ));
    }
    let mut mask = 0u32;
    for item in caps.try_iter()? {
        let item = item?;
        let name = item.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "capabilities must hold strings, got {}",
                item.repr()
                    .map_or_else(|_| "?".to_owned(), |r| r.to_string())
            ))
        })?;
        mask |= core::capability_mask([name.to_cow()?.as_ref()]).map_err(to_py)?;
    }
    Ok(mask)
}

/// One model's deltas as `take_deltas` returns them.
type DeltaRow = (u32, u64, u64, Vec<u64>, f64, f64, u64, u64, f64);

/// What `select` returns: the model object, its slot, the ticket, and flags.
type Picked = (Py<PyAny>, u32, u64, u8);

/// Selection state of one registry. Every method takes an internal lock
/// for the few microseconds it runs; no Python-level lock is involved.
#[pyclass(frozen, module = "orchestrator._core")]
struct SelectionCore {
    inner: Mutex<Inner>,
}

/// The table and, by slot, the Python object registered there, updated
/// together under one lock so a selected slot always has its object.
struct Inner {
    table: Table,
    models: Vec<Option<Py<PyAny>>>,
}

impl SelectionCore {
    #[allow(clippy::too_many_arguments)]
    fn constraints(
        table: &Table,
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<f64>,
        min_speed: Option<f64>,
        context_length: Option<i64>,
        exclude: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
    ) -> PyResult<Constraints> {
        let mut excluded = Vec::new();
        if let Some(names) = exclude {
            if names.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(
                    "exclude_models must be a list of model names, not a string",
                ));
            }
            for item in names.try_iter()? {
                let item = item?;
                let name = item.cast::<PyString>().map_err(|_| {
                    PyTypeError::new_err("exclude_models must hold model names (strings)")
                })?;
                let name = name.to_cow()?;
                let name = name.as_ref();
                match table.slot_of(name) {
                    Some(slot) => excluded.push(slot),
                    None => {
                        return Err(PyValueError::new_err(format!(
                            "invalid exclude_models: no model named {name:?} is registered"
                        )))
                    }
                }
            }
        }
        Constraints::new(
            capability_mask(capabilities)?,
            max_cost,
            min_speed,
            context_length,
            excluded,
            input_tokens,
            output_tokens,
        )
        .map_err(to_py)
    }
}

#[pymethods]
impl SelectionCore {
    #[new]
    #[pyo3(signature = (strategy="ucb", exploration_factor=2.0, min_trials=5, confidence_level=0.95, discount=1.0))]
    fn new(
        strategy: &str,
        exploration_factor: f64,
        min_trials: i64,
        confidence_level: f64,
        discount: f64,
    ) -> PyResult<Self> {
        let config = Self::strategy_config_inner(
            strategy,
            exploration_factor,
            min_trials,
            confidence_level,
            discount,
        )?;
        let table = Table::new(config, RewardWeights::default(), BreakerConfig::default())
            .map_err(to_py)?;
        Ok(SelectionCore {
            inner: Mutex::new(Inner {
                table,
                models: Vec::new(),
            }),
        })
    }

    /// Change the strategy and its parameters; statistics are kept.
    #[pyo3(signature = (strategy, exploration_factor=2.0, min_trials=5, confidence_level=0.95, discount=1.0))]
    fn configure_strategy(
        &self,
        strategy: &str,
        exploration_factor: f64,
        min_trials: i64,
        confidence_level: f64,
        discount: f64,
    ) -> PyResult<()> {
        let config = Self::strategy_config_inner(
            strategy,
            exploration_factor,
            min_trials,
            confidence_level,
            discount,
        )?;
        self.inner.lock().table.set_strategy(config);
        Ok(())
    }

    #[pyo3(signature = (success=1.0, latency=0.5, cost=0.25, quality=1.0, latency_ref_s=2.0, cost_ref_usd=0.01))]
    fn configure_reward(
        &self,
        success: f64,
        latency: f64,
        cost: f64,
        quality: f64,
        latency_ref_s: f64,
        cost_ref_usd: f64,
    ) -> PyResult<()> {
        self.inner
            .lock()
            .table
            .set_reward_weights(RewardWeights {
                success,
                latency,
                cost,
                quality,
                latency_ref_s,
                cost_ref_usd,
            })
            .map_err(to_py)
    }

    #[pyo3(signature = (failure_threshold=3, recovery_threshold=2, base_cooldown_s=30.0, max_cooldown_s=600.0, error_rate_threshold=0.5, error_rate_window=20))]
    fn configure_breaker(
        &self,
        failure_threshold: i64,
        recovery_threshold: i64,
        base_cooldown_s: f64,
        max_cooldown_s: f64,
        error_rate_threshold: f64,
        error_rate_window: i64,
    ) -> PyResult<()> {
        let positive = |field: &'static str, v: i64| {
            u32::try_from(v)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| to_py(CoreError::invalid(field, v)))
        };
        let config = BreakerConfig {
            failure_threshold: positive("failure_threshold", failure_threshold)?,
            recovery_threshold: positive("recovery_threshold", recovery_threshold)?,
            base_cooldown_s,
            max_cooldown_s,
            error_rate_threshold,
            error_rate_window: positive("error_rate_window", error_rate_window)?,
        };
        self.inner
            .lock()
            .table
            .set_breaker_config(config)
            .map_err(to_py)
    }

    /// Seed the generator Thompson sampling draws from.
    fn seed(&self, seed: u64) {
        self.inner.lock().table.seed(seed);
    }

    fn set_pending_timeout(&self, seconds: f64) -> PyResult<()> {
        self.inner
            .lock()
            .table
            .set_pending_timeout(seconds)
            .map_err(to_py)
    }

    /// Register `model` (any Python object, returned by `select`); returns its slot.
    #[pyo3(signature = (model, name, provider, capabilities, context_length=0, input_price_per_million=0.0, output_price_per_million=0.0, request_fee=0.0, priced=false, declared_speed=None))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        model: Py<PyAny>,
        name: String,
        provider: String,
        capabilities: &Bound<'_, PyAny>,
        context_length: i64,
        input_price_per_million: f64,
        output_price_per_million: f64,
        request_fee: f64,
        priced: bool,
        declared_speed: Option<f64>,
    ) -> PyResult<u32> {
        let spec = ModelSpec {
            name,
            provider,
            capabilities: capability_mask(Some(capabilities))?,
            context_length: u32::try_from(context_length)
                .map_err(|_| to_py(CoreError::invalid("context_length", context_length)))?,
            input_price_per_million,
            output_price_per_million,
            request_fee,
            priced,
            declared_speed,
        };
        let mut guard = self.inner.lock();
        let slot = guard.table.register(spec).map_err(to_py)?;
        let i = slot as usize;
        if guard.models.len() <= i {
            guard.models.resize_with(i + 1, || None);
        }
        guard.models[i] = Some(model);
        Ok(slot)
    }

    /// Replace a registered model's declared capabilities, window, prices or speed.
    #[pyo3(signature = (slot, name, provider, capabilities, context_length=0, input_price_per_million=0.0, output_price_per_million=0.0, request_fee=0.0, priced=false, declared_speed=None))]
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        slot: u32,
        name: String,
        provider: String,
        capabilities: &Bound<'_, PyAny>,
        context_length: i64,
        input_price_per_million: f64,
        output_price_per_million: f64,
        request_fee: f64,
        priced: bool,
        declared_speed: Option<f64>,
    ) -> PyResult<()> {
        let spec = ModelSpec {
            name,
            provider,
            capabilities: capability_mask(Some(capabilities))?,
            context_length: u32::try_from(context_length)
                .map_err(|_| to_py(CoreError::invalid("context_length", context_length)))?,
            input_price_per_million,
            output_price_per_million,
            request_fee,
            priced,
            declared_speed,
        };
        self.inner
            .lock()
            .table
            .update_spec(slot, spec)
            .map_err(to_py)
    }

    /// Remove a model by name; returns the slot it held.
    fn unregister(&self, name: &str) -> PyResult<u32> {
        let mut guard = self.inner.lock();
        let slot = guard.table.unregister(name).map_err(to_py)?;
        guard.models[slot as usize] = None;
        Ok(slot)
    }

    /// The object registered in `slot`.
    fn model(&self, py: Python<'_>, slot: u32) -> PyResult<Py<PyAny>> {
        let guard = self.inner.lock();
        match guard.models.get(slot as usize) {
            Some(Some(m)) => Ok(m.clone_ref(py)),
            _ => Err(to_py(CoreError::UnknownSlot(slot))),
        }
    }

    fn slot_of(&self, name: &str) -> Option<u32> {
        self.inner.lock().table.slot_of(name)
    }

    fn __len__(&self) -> usize {
        self.inner.lock().table.len()
    }

    /// Pick a model: `(model, slot, ticket, flags)`, or `None` when no model
    /// is eligible. Flags: 1 forced trial, 2 every breaker was open, 4 the
    /// breaker moved to half-open.
    #[pyo3(signature = (capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude=None, input_tokens=None, output_tokens=None))]
    #[allow(clippy::too_many_arguments)]
    fn select(
        &self,
        py: Python<'_>,
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<f64>,
        min_speed: Option<f64>,
        context_length: Option<i64>,
        exclude: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
    ) -> PyResult<Option<Picked>> {
        let mut guard = self.inner.lock();
        let table = &mut guard.table;
        let c = Self::constraints(
            table,
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude,
            input_tokens,
            output_tokens,
        )?;
        let Some(sel) = table.select(&c) else {
            return Ok(None);
        };
        let flags = u8::from(sel.forced)
            | (u8::from(sel.fallback_open) << 1)
            | (u8::from(sel.transition == core::Transition::HalfOpened) << 2);
        let model = guard.models[sel.slot as usize]
            .as_ref()
            .map(|m| m.clone_ref(py))
            .expect("an active slot has its object");
        Ok(Some((model, sel.slot, sel.ticket, flags)))
    }

    /// Select for `count` requests at once, each seeing the earlier ones as
    /// pending: a list of `(slot, ticket)`, shorter if models ran out.
    #[pyo3(signature = (count, capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude=None, input_tokens=None, output_tokens=None))]
    #[allow(clippy::too_many_arguments)]
    fn select_many(
        &self,
        py: Python<'_>,
        count: i64,
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<f64>,
        min_speed: Option<f64>,
        context_length: Option<i64>,
        exclude: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
    ) -> PyResult<Vec<(Py<PyAny>, u32, u64)>> {
        let count =
            usize::try_from(count).map_err(|_| to_py(CoreError::invalid("count", count)))?;
        let mut guard = self.inner.lock();
        let table = &mut guard.table;
        let c = Self::constraints(
            table,
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude,
            input_tokens,
            output_tokens,
        )?;
        let selections = table.select_many(&c, count);
        Ok(selections
            .into_iter()
            .map(|s| {
                let model = guard.models[s.slot as usize]
                    .as_ref()
                    .map(|m| m.clone_ref(py))
                    .expect("an active slot has its object");
                (model, s.slot, s.ticket)
            })
            .collect())
    }

    /// Every model's verdict for a request as dicts, and the slot `select`
    /// would choose (or `None`), without changing anything.
    #[pyo3(signature = (capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude=None, input_tokens=None, output_tokens=None))]
    #[allow(clippy::too_many_arguments)]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        capabilities: Option<&Bound<'py, PyAny>>,
        max_cost: Option<f64>,
        min_speed: Option<f64>,
        context_length: Option<i64>,
        exclude: Option<&Bound<'py, PyAny>>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
    ) -> PyResult<(Bound<'py, PyList>, Option<u32>, bool)> {
        let guard = self.inner.lock();
        let table = &guard.table;
        let c = Self::constraints(
            table,
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude,
            input_tokens,
            output_tokens,
        )?;
        let out = PyList::empty(py);
        for e in table.explain(&c) {
            let row = PyDict::new(py);
            row.set_item("slot", e.slot)?;
            match e.verdict {
                Verdict::Eligible(p) => {
                    row.set_item("eligible", true)?;
                    row.set_item("estimate", p.estimate)?;
                    row.set_item("exploration_bonus", p.exploration_bonus)?;
                    row.set_item("score", p.score)?;
                    row.set_item("ci_low", p.ci_low)?;
                    row.set_item("ci_high", p.ci_high)?;
                    row.set_item("trials", p.trials)?;
                    row.set_item("pending", p.pending)?;
                    row.set_item("forced", p.forced)?;
                    row.set_item("expected_cost", p.expected_cost)?;
                }
                Verdict::Rejected(r) => {
                    row.set_item("eligible", false)?;
                    row.set_item("constraint", r.constraint())?;
                    row.set_item("reason", r.describe())?;
                }
            }
            out.append(row)?;
        }
        let pick = table.pick(&c);
        Ok((
            out,
            pick.map(|(slot, _, _)| slot as u32),
            pick.is_some_and(|(_, _, fallback)| fallback),
        ))
    }

    /// Scores of every slot as little-endian f64 bytes; `-inf` where ineligible.
    #[pyo3(signature = (capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude=None, input_tokens=None, output_tokens=None))]
    #[allow(clippy::too_many_arguments)]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        capabilities: Option<&Bound<'py, PyAny>>,
        max_cost: Option<f64>,
        min_speed: Option<f64>,
        context_length: Option<i64>,
        exclude: Option<&Bound<'py, PyAny>>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let guard = self.inner.lock();
        let table = &guard.table;
        let c = Self::constraints(
            table,
            capabilities,
            max_cost,
            min_speed,
            context_length,
            exclude,
            input_tokens,
            output_tokens,
        )?;
        Ok(f64_bytes(py, &table.scores(&c)))
    }

    /// Fold one outcome in; returns the breaker transition code
    /// (0 none, 1 opened, 2 half-opened, 3 closed). `ticket` 0 means none;
    /// `cost` `None` prices the token counts at the model's declared prices.
    #[pyo3(signature = (slot, ticket, success, error_class=0, latency=0.0, time_to_first_token=None, input_tokens=0, output_tokens=0, cost=None, quality=None, reward=None, retry_after=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        slot: u32,
        ticket: u64,
        success: bool,
        error_class: u8,
        latency: f64,
        time_to_first_token: Option<f64>,
        input_tokens: i64,
        output_tokens: i64,
        cost: Option<f64>,
        quality: Option<f64>,
        reward: Option<f64>,
        retry_after: f64,
    ) -> PyResult<u8> {
        let input_tokens = count("input_tokens", input_tokens)?;
        let output_tokens = count("output_tokens", output_tokens)?;
        let ticket = (ticket != 0).then_some(ticket);
        let mut guard = self.inner.lock();
        let table = &mut guard.table;
        let cost_usd = match cost {
            Some(c) => c,
            None => table
                .price(slot, input_tokens, output_tokens)
                .map_err(to_py)?,
        };
        let outcome = Outcome {
            success,
            error_class,
            latency_s: latency,
            ttft_s: time_to_first_token,
            input_tokens,
            output_tokens,
            cost_usd,
            quality,
            reward,
            retry_after_s: retry_after,
        };
        table
            .report(slot, ticket, &outcome)
            .map(|t| t.code())
            .map_err(to_py)
    }

    /// Report many outcomes at once from equal-length sequences; all are
    /// validated before any is applied. Returns the transition codes.
    #[pyo3(signature = (slots, tickets, successes, latencies, error_classes=None, input_tokens=None, output_tokens=None, costs=None, qualities=None))]
    #[allow(clippy::too_many_arguments)]
    fn report_many(
        &self,
        slots: Vec<u32>,
        tickets: Vec<u64>,
        successes: Vec<bool>,
        latencies: Vec<f64>,
        error_classes: Option<Vec<u8>>,
        input_tokens: Option<Vec<i64>>,
        output_tokens: Option<Vec<i64>>,
        costs: Option<Vec<f64>>,
        qualities: Option<Vec<f64>>,
    ) -> PyResult<Vec<u8>> {
        let n = slots.len();
        let same_len = |field: &'static str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(PyValueError::new_err(format!(
                    "invalid {field}: {len} values for {n} slots"
                )))
            }
        };
        same_len("tickets", tickets.len())?;
        same_len("successes", successes.len())?;
        same_len("latencies", latencies.len())?;
        for (field, len) in [
            ("error_classes", error_classes.as_ref().map(Vec::len)),
            ("input_tokens", input_tokens.as_ref().map(Vec::len)),
            ("output_tokens", output_tokens.as_ref().map(Vec::len)),
            ("costs", costs.as_ref().map(Vec::len)),
            ("qualities", qualities.as_ref().map(Vec::len)),
        ] {
            if let Some(len) = len {
                same_len(field, len)?;
            }
        }
        let mut guard = self.inner.lock();
        let table = &mut guard.table;
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            let success = successes[i];
            let error_class = error_classes.as_ref().map_or(0, |v| v[i]);
            let inp = count("input_tokens", input_tokens.as_ref().map_or(0, |v| v[i]))?;
            let out = count("output_tokens", output_tokens.as_ref().map_or(0, |v| v[i]))?;
            let cost_usd = match &costs {
                Some(v) => v[i],
                None => table.price(slots[i], inp, out).map_err(to_py)?,
            };
            items.push((
                slots[i],
                (tickets[i] != 0).then_some(tickets[i]),
                Outcome {
                    success,
                    error_class: if success || error_class != 0 {
                        error_class
                    } else {
                        (core::ERROR_CLASSES.len() - 1) as u8
                    },
                    latency_s: latencies[i],
                    ttft_s: None,
                    input_tokens: inp,
                    output_tokens: out,
                    cost_usd,
                    quality: qualities.as_ref().map(|v| v[i]).filter(|q| !q.is_nan()),
                    reward: None,
                    retry_after_s: 0.0,
                },
            ));
        }
        table
            .report_many(&items)
            .map(|ts| ts.into_iter().map(|t| t.code()).collect())
            .map_err(to_py)
    }

    /// Release a ticket whose request was abandoned without an outcome.
    fn cancel(&self, slot: u32, ticket: u64) -> PyResult<()> {
        self.inner.lock().table.cancel(slot, ticket).map_err(to_py)
    }

    /// Record an active health check's verdict; returns the transition code.
    fn record_health_check(&self, slot: u32, healthy: bool) -> PyResult<u8> {
        self.inner
            .lock()
            .table
            .record_health_check(slot, healthy)
            .map(|t| t.code())
            .map_err(to_py)
    }

    /// The breaker of a slot as a dict.
    fn breaker<'py>(&self, py: Python<'py>, slot: u32) -> PyResult<Bound<'py, PyDict>> {
        let guard = self.inner.lock();
        let table = &guard.table;
        let b = table.breaker(slot).map_err(to_py)?;
        let now = table.now();
        let d = PyDict::new(py);
        d.set_item("state", b.state.name())?;
        d.set_item("consecutive_failures", b.consecutive_failures)?;
        d.set_item("consecutive_successes", b.consecutive_successes)?;
        d.set_item("trips", b.trips)?;
        d.set_item(
            "retry_in",
            if b.state == core::BreakerState::Open {
                (b.open_until - now).max(0.0)
            } else {
                0.0
            },
        )?;
        d.set_item("error_rate", b.error_rate)?;
        d.set_item("outcomes_seen", b.outcomes_seen)?;
        Ok(d)
    }

    /// What was observed of a slot, as a dict.
    fn snapshot<'py>(&self, py: Python<'py>, slot: u32) -> PyResult<Bound<'py, PyDict>> {
        let (s, pending, idle_for) = {
            let guard = self.inner.lock();
            let table = &guard.table;
            (
                table.snapshot(slot).map_err(to_py)?,
                table.pending(slot).map_err(to_py)?,
                table.idle_for(slot).map_err(to_py)?,
            )
        };
        let d = PyDict::new(py);
        d.set_item("requests", s.requests)?;
        d.set_item("successes", s.successes)?;
        let failures = PyDict::new(py);
        for (name, n) in core::ERROR_CLASSES.iter().zip(s.failures_by_class).skip(1) {
            if n > 0 {
                failures.set_item(*name, n)?;
            }
        }
        d.set_item("failures_by_class", failures)?;
        d.set_item("input_tokens", s.input_tokens)?;
        d.set_item("output_tokens", s.output_tokens)?;
        d.set_item("total_cost", s.total_cost_usd)?;
        d.set_item("mean_reward", s.mean_reward)?;
        d.set_item("latency_p50", s.latency_p50_s)?;
        d.set_item("latency_p95", s.latency_p95_s)?;
        d.set_item("time_to_first_token_p50", s.ttft_p50_s)?;
        d.set_item("time_to_first_token_p95", s.ttft_p95_s)?;
        d.set_item("tokens_per_second", s.tokens_per_second)?;
        d.set_item("pending", pending)?;
        d.set_item("recent_latency_p50", s.recent_latency_p50_s)?;
        d.set_item("baseline_latency_p50", s.baseline_latency_p50_s)?;
        d.set_item("idle_for", idle_for)?;
        Ok(d)
    }

    /// `(bytes, rows, columns)`: the statistics matrix as little-endian f64.
    fn stats_matrix<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyBytes>, usize, Vec<&'static str>) {
        let guard = self.inner.lock();
        let table = &guard.table;
        let data = table.stats_matrix();
        (
            f64_bytes(py, &data),
            table.capacity(),
            Table::STATS_COLUMNS.to_vec(),
        )
    }

    /// Outcomes observed since the last call, per model, as tuples
    /// `(slot, requests, successes, failures_by_class, reward_sum,
    /// reward_sq_sum, input_tokens, output_tokens, cost)`; resets them.
    fn take_deltas(&self) -> Vec<DeltaRow> {
        self.inner
            .lock()
            .table
            .take_deltas()
            .into_iter()
            .map(|(slot, d)| {
                (
                    slot,
                    d.requests,
                    d.successes,
                    d.failures_by_class.to_vec(),
                    d.reward_sum,
                    d.reward_sq_sum,
                    d.input_tokens,
                    d.output_tokens,
                    d.cost_usd,
                )
            })
            .collect()
    }

    /// Put back deltas from `take_deltas` that could not be delivered.
    fn restore_deltas(&self, rows: Vec<DeltaRow>) -> PyResult<()> {
        let mut deltas = Vec::with_capacity(rows.len());
        for (slot, requests, successes, failures, reward_sum, reward_sq, inp, out, cost) in rows {
            let mut failures_by_class = [0u64; core::ERROR_CLASSES.len()];
            if failures.len() != failures_by_class.len() {
                return Err(PyValueError::new_err(format!(
                    "invalid failures_by_class: {} values, expected {}",
                    failures.len(),
                    failures_by_class.len()
                )));
            }
            failures_by_class.copy_from_slice(&failures);
            deltas.push((
                slot,
                core::Delta {
                    requests,
                    successes,
                    failures_by_class,
                    reward_sum,
                    reward_sq_sum: reward_sq,
                    input_tokens: inp,
                    output_tokens: out,
                    cost_usd: cost,
                },
            ));
        }
        self.inner.lock().table.restore_deltas(&deltas);
        Ok(())
    }

    /// Set other workers' statistics of a slot (effective count, reward sum,
    /// squared reward sum).
    fn set_shared(&self, slot: u32, n: f64, reward_sum: f64, reward_sq_sum: f64) -> PyResult<()> {
        self.inner
            .lock()
            .table
            .set_shared(
                slot,
                core::SharedStats {
                    n,
                    reward_sum,
                    reward_sq_sum,
                },
            )
            .map_err(to_py)
    }

    /// Other workers' statistics of a slot: `(n, reward_sum, reward_sq_sum)`.
    fn shared(&self, slot: u32) -> PyResult<(f64, f64, f64)> {
        let s = self.inner.lock().table.shared(slot).map_err(to_py)?;
        Ok((s.n, s.reward_sum, s.reward_sq_sum))
    }

    fn pending(&self, slot: u32) -> PyResult<u32> {
        self.inner.lock().table.pending(slot).map_err(to_py)
    }

    fn outstanding_tickets(&self) -> usize {
        self.inner.lock().table.outstanding_tickets()
    }

    fn now(&self) -> f64 {
        self.inner.lock().table.now()
    }

    /// Move the core clock forward (tests of cool-downs and expiry).
    fn advance_clock(&self, seconds: f64) -> PyResult<()> {
        self.inner
            .lock()
            .table
            .advance_clock(seconds)
            .map_err(to_py)
    }

    /// Expire tickets older than the pending timeout now.
    fn sweep(&self) {
        self.inner.lock().table.sweep();
    }
}

impl SelectionCore {
    fn strategy_config_inner(
        strategy: &str,
        exploration_factor: f64,
        min_trials: i64,
        confidence_level: f64,
        discount: f64,
    ) -> PyResult<StrategyConfig> {
        let min_trials = u32::try_from(min_trials)
            .map_err(|_| to_py(CoreError::invalid("min_trials", min_trials)))?;
        StrategyConfig::new(
            parse_strategy(strategy)?,
            exploration_factor,
            min_trials,
            confidence_level,
            discount,
        )
        .map_err(to_py)
    }
}

fn f64_bytes<'py>(py: Python<'py>, values: &[f64]) -> Bound<'py, PyBytes> {
    let mut raw = Vec::with_capacity(values.len() * 8);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    PyBytes::new(py, &raw)
}

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
fn cache_key(
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

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SelectionCore>()?;
    m.add_function(wrap_pyfunction!(cache_key, m)?)?;
    m.add("CAPABILITY_NAMES", core::CAPABILITY_NAMES.to_vec())?;
    m.add("ERROR_CLASSES", core::ERROR_CLASSES.to_vec())?;
    m.add("STATS_COLUMNS", Table::STATS_COLUMNS.to_vec())?;
    m.add("KEY_FORMAT_VERSION", core::hash::KEY_FORMAT_VERSION)?;
    m.add("DEFAULT_INPUT_TOKENS", core::table::DEFAULT_INPUT_TOKENS)?;
    m.add("DEFAULT_OUTPUT_TOKENS", core::table::DEFAULT_OUTPUT_TOKENS)?;
    m.add("RECENT_LATENCIES", core::stats::RECENT_LATENCIES)?;
    m.add("BASELINE_LATENCIES", core::stats::BASELINE_LATENCIES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    router::register(m)?;
    Ok(())
}
