//! `SelectionCore`: one registry's selection state, behind one short lock.
//!
//! Every method converts its arguments first (caller code may run there),
//! then takes the lock, touches only Rust values and reference counts, and
//! releases it before building any Python object or calling back into
//! Python. So no callback, iterator or finaliser can run while the lock is
//! held, and none can deadlock against another thread's selection.

use orchestrator_core as core;
use orchestrator_core::contextual::RouterConfig;
use orchestrator_core::limits::Returns;
use orchestrator_core::routing::{NamedChange, Prompted, Routing};
use orchestrator_core::sessions::{Change, SessionConfig, MAX_SESSIONS};
use orchestrator_core::{
    BreakerConfig, CoreError, ModelSpec, RewardWeights, Strategy, StrategyConfig, Table, Transition,
};
use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::{PyTraverseError, PyVisit};

use crate::convert;
use crate::errors::{to_py, NoEligible, StaleTicketError, UnknownRequestError};
use crate::explanation::Explanation;
use crate::held;
use crate::leases;
use crate::request::{outcome, Outcome, OutcomeFields, Request, RoutedInput};
use crate::router::router_config;
use crate::transition::Transition as PyTransition;

/// One model's deltas as `take_deltas` returns them.
type DeltaRow = (u32, u64, u64, Vec<u64>, f64, f64, u64, u64, f64);

/// The table, by slot the Python object registered there and, with the
/// contextual strategy, the router beside the table: updated together under
/// one lock so a selected slot always has its object and its router model.
struct Inner {
    table: Table,
    models: Vec<Option<Py<PyAny>>>,
    routing: Option<Routing>,
}

/// One selection as the registry returns it: `(model, slot, ticket, request_id)`.
type Selected = (Py<PyAny>, u32, u64, Option<u64>);

/// What one selection produced, copied out of the lock.
struct Picked {
    model: Py<PyAny>,
    slot: u32,
    ticket: u64,
    /// The breaker moved to half-open (a probe), and whether every eligible
    /// model's breaker was open.
    probe: Option<bool>,
    /// The contextual decision's id for quality feedback.
    request_id: Option<u64>,
}

impl Picked {
    fn selected(self) -> Selected {
        (self.model, self.slot, self.ticket, self.request_id)
    }
}

/// Selection state of one registry.
#[pyclass(frozen, module = "orchestrator._core")]
pub struct SelectionCore {
    inner: Mutex<Inner>,
    /// Identifies this core's tickets in a context's held tickets.
    id: u64,
    /// The registry, called back after the lock is released:
    /// `listener._on_probe(model, all_open)` after a selection that sends a
    /// probe to a half-open model, and `listener._no_eligible_error(
    /// explanation, request)` for the exception to raise when no model is
    /// eligible (without a listener: `NoEligible(explanation, request)`).
    listener: Mutex<Option<Py<PyAny>>>,
}

fn strategy_config(
    strategy: Option<&Bound<'_, PyAny>>,
    exploration_factor: Option<&Bound<'_, PyAny>>,
    min_trials: Option<&Bound<'_, PyAny>>,
    confidence_level: Option<&Bound<'_, PyAny>>,
    discount: Option<&Bound<'_, PyAny>>,
) -> PyResult<StrategyConfig> {
    let d = StrategyConfig::default();
    let name = match strategy {
        Some(v) if !v.is_none() => convert::string(v, "strategy")?,
        _ => d.strategy.name().to_owned(),
    };
    StrategyConfig::new(
        Strategy::from_name(&name).map_err(to_py)?,
        convert::optional_real(exploration_factor, "exploration_factor")?
            .unwrap_or(d.exploration_factor),
        convert::optional_count32(min_trials, "min_trials", 0)?.unwrap_or(d.min_trials),
        convert::optional_real(confidence_level, "confidence_level")?.unwrap_or(d.confidence_level),
        convert::optional_real(discount, "discount")?.unwrap_or(d.discount),
    )
    .map_err(to_py)
}

#[allow(clippy::too_many_arguments)]
fn model_spec(
    name: &Bound<'_, PyAny>,
    provider: &Bound<'_, PyAny>,
    capabilities: &Bound<'_, PyAny>,
    context_length: &Bound<'_, PyAny>,
    input_price_per_million: &Bound<'_, PyAny>,
    output_price_per_million: &Bound<'_, PyAny>,
    request_fee: &Bound<'_, PyAny>,
    priced: &Bound<'_, PyAny>,
    declared_speed: Option<&Bound<'_, PyAny>>,
    limits: core::RateLimits,
    tags: Option<&Bound<'_, PyAny>>,
    deployment: Option<&Bound<'_, PyAny>>,
) -> PyResult<ModelSpec> {
    let deployment = convert::optional_label(deployment, "deployment")?;
    let spec = ModelSpec {
        name: core::spec::qualified_name(&convert::string(name, "name")?, deployment.as_deref()),
        deployment,
        provider: convert::string(provider, "provider")?,
        capabilities: convert::capabilities(Some(capabilities), "capabilities")?,
        context_length: convert::count32(context_length, "context_length", 0)?,
        input_price_per_million: convert::real(input_price_per_million, "input_price_per_million")?,
        output_price_per_million: convert::real(
            output_price_per_million,
            "output_price_per_million",
        )?,
        request_fee: convert::real(request_fee, "request_fee")?,
        priced: convert::boolean(priced, "priced")?,
        declared_speed: convert::optional_real(declared_speed, "declared_speed")?,
        limits,
        tags: convert::tags(tags, "tags")?,
    };
    spec.validate().map_err(to_py)?;
    Ok(spec)
}

impl Inner {
    fn object(&self, py: Python<'_>, slot: u32) -> Py<PyAny> {
        self.models[slot as usize]
            .as_ref()
            .map(|m| m.clone_ref(py))
            .expect("an active slot has its object")
    }

    /// Select for `request` (by the router when there is one), or explain
    /// why nothing is eligible. `calling`: the caller calls the provider
    /// itself, so the call starts now (a ticket held for the task starts its
    /// call when the model takes it).
    fn select(
        &mut self,
        py: Python<'_>,
        request: &Request,
        routed: &RoutedInput,
        calling: bool,
    ) -> PyResult<Result<Picked, Explanation>> {
        let c = request.resolve(&self.table)?;
        let selected = match self.routing.as_mut() {
            Some(routing) => routing
                .select(&mut self.table, &c, &routed.prompted())
                .map_err(to_py)?
                .map(|r| (r.selection, Some(r.request_id))),
            None => self.table.select(&c).map(|sel| (sel, None)),
        };
        match selected {
            Some((sel, request_id)) => {
                if calling {
                    self.table.start_call(sel.slot, sel.ticket).map_err(to_py)?;
                }
                Ok(Ok(self.picked(py, &sel, request_id)))
            }
            None => Ok(Err(self.explanation(py, &c, &routed.prompted())?)),
        }
    }

    fn picked(&self, py: Python<'_>, sel: &core::Selection, request_id: Option<u64>) -> Picked {
        Picked {
            model: self.object(py, sel.slot),
            slot: sel.slot,
            ticket: sel.ticket,
            probe: (sel.transition == Transition::HalfOpened).then_some(sel.fallback_open),
            request_id,
        }
    }

    /// Every model's verdict for `c`, with the router's predictions when
    /// there is a router; changes nothing.
    fn explanation(
        &mut self,
        py: Python<'_>,
        c: &core::Constraints,
        prompted: &Prompted<'_>,
    ) -> PyResult<Explanation> {
        match self.routing.as_mut() {
            Some(routing) => {
                let routed = routing
                    .explain(&self.table, c, prompted, DEFAULT_TOP_FEATURES)
                    .map_err(to_py)?;
                Ok(Explanation::of_routed(
                    py,
                    &self.table,
                    &self.models,
                    c,
                    &routed,
                ))
            }
            None => Ok(Explanation::of(py, &self.table, &self.models, c)),
        }
    }

    fn routing(&mut self) -> PyResult<&mut Routing> {
        self.routing.as_mut().ok_or_else(not_contextual)
    }
}

/// Features an explanation lists per model.
const DEFAULT_TOP_FEATURES: usize = 5;

fn not_contextual() -> PyErr {
    PyValueError::new_err(
        "invalid selection_strategy: this needs the contextual strategy \
         (ModelRegistry(selection_strategy=\"contextual\"))",
    )
}

impl SelectionCore {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The lock, with tickets past the pending timeout released first: every
    /// reading (explanations, scores, windows, pending counts) then sees what
    /// the next selection will, not reservations only a selection would expire.
    fn lock_current(&self) -> parking_lot::MutexGuard<'_, Inner> {
        let mut guard = self.inner.lock();
        guard.table.sweep();
        guard
    }

    /// What was observed of the slot `find` picks, as a dict; the slot is
    /// found and read under one lock.
    fn observed<'py>(
        &self,
        py: Python<'py>,
        find: impl FnOnce(&Table) -> Result<u32, CoreError>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (s, pending, idle_for) = {
            let guard = self.lock_current();
            let table = &guard.table;
            let slot = find(table).map_err(to_py)?;
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

    /// The request of `select_model`'s or `select`'s arguments: the eleven
    /// request keywords in order, or a `constraints` object whose
    /// `request()` gives one.
    fn request_of(
        py: Python<'_>,
        args: [Option<&Bound<'_, PyAny>>; 11],
        constraints: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        let Some(given) = constraints.filter(|c| !c.is_none()) else {
            let [caps, max_cost, min_speed, context, exclude, input, output, tags, session, alias, tenant] =
                args;
            return Request::parse(
                caps, max_cost, min_speed, context, exclude, input, output, tags, session, alias,
                tenant,
            );
        };
        if args.iter().flatten().any(|v| !v.is_none()) {
            return Err(PyTypeError::new_err(
                "pass either constraints or the individual keyword arguments",
            ));
        }
        given
            .call_method0(intern!(py, "request"))
            .and_then(|r| r.extract::<Request>().map_err(PyErr::from))
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "invalid constraints: expected ModelConstraints, got {}",
                    given
                        .repr()
                        .map_or_else(|_| "?".to_owned(), |r| r.to_string())
                ))
            })
    }

    fn listener(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.listener.lock().as_ref().map(|l| l.clone_ref(py))
    }

    /// After the lock is released: tell the listener about a probe.
    fn announce(&self, py: Python<'_>, picked: &Picked) -> PyResult<()> {
        if let (Some(all_open), Some(listener)) = (picked.probe, self.listener(py)) {
            listener.call_method1(
                py,
                intern!(py, "_on_probe"),
                (picked.model.clone_ref(py), all_open),
            )?;
        }
        Ok(())
    }

    /// The exception for a request no model satisfies (call only after the
    /// lock is released: the listener is Python code).
    fn no_eligible(&self, py: Python<'_>, explanation: Explanation, request: &Request) -> PyErr {
        let Some(listener) = self.listener(py) else {
            return NoEligible::new_err((explanation, request.clone()));
        };
        match listener.call_method1(
            py,
            intern!(py, "_no_eligible_error"),
            (explanation, request.clone()),
        ) {
            Ok(error) => PyErr::from_value(error.into_bound(py)),
            Err(err) => err,
        }
    }

    /// Select for `request` and hold the ticket for this task.
    fn select_and_hold(
        &self,
        py: Python<'_>,
        request: &Request,
        routed: &RoutedInput,
    ) -> PyResult<Picked> {
        let picked = self.select_once(py, request, routed, false)?;
        if let Some(old) = held::hold(py, self.id, picked.slot, picked.ticket)? {
            // An earlier unused selection of this model in this task: release it.
            let _ = self.lock().table.cancel(picked.slot, old, false);
        }
        Ok(picked)
    }

    /// One selection, the probe announced, or the no-eligible error.
    fn select_once(
        &self,
        py: Python<'_>,
        request: &Request,
        routed: &RoutedInput,
        calling: bool,
    ) -> PyResult<Picked> {
        let selected = self.lock().select(py, request, routed, calling)?; // the lock is released here
        let picked = selected.map_err(|e| self.no_eligible(py, e, request))?;
        self.announce(py, &picked)?;
        Ok(picked)
    }
}

#[pymethods]
impl SelectionCore {
    #[new]
    #[pyo3(signature = (strategy=None, exploration_factor=None, min_trials=None, confidence_level=None, discount=None))]
    fn new(
        strategy: Option<&Bound<'_, PyAny>>,
        exploration_factor: Option<&Bound<'_, PyAny>>,
        min_trials: Option<&Bound<'_, PyAny>>,
        confidence_level: Option<&Bound<'_, PyAny>>,
        discount: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let core = SelectionCore {
            inner: Mutex::new(Inner {
                table: Table::default(),
                models: Vec::new(),
                routing: None,
            }),
            id: held::new_core_id(),
            listener: Mutex::new(None),
        };
        if strategy.is_some() {
            core.configure_strategy(
                strategy,
                exploration_factor,
                min_trials,
                confidence_level,
                discount,
            )?;
        }
        Ok(core)
    }

    /// Change the strategy and its parameters; statistics are kept.
    #[pyo3(signature = (strategy=None, exploration_factor=None, min_trials=None, confidence_level=None, discount=None))]
    fn configure_strategy(
        &self,
        strategy: Option<&Bound<'_, PyAny>>,
        exploration_factor: Option<&Bound<'_, PyAny>>,
        min_trials: Option<&Bound<'_, PyAny>>,
        confidence_level: Option<&Bound<'_, PyAny>>,
        discount: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let config = strategy_config(
            strategy,
            exploration_factor,
            min_trials,
            confidence_level,
            discount,
        )?;
        self.lock().table.set_strategy(config);
        Ok(())
    }

    #[pyo3(signature = (success=None, latency=None, cost=None, quality=None, latency_ref_s=None, cost_ref_usd=None))]
    fn configure_reward(
        &self,
        success: Option<&Bound<'_, PyAny>>,
        latency: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        quality: Option<&Bound<'_, PyAny>>,
        latency_ref_s: Option<&Bound<'_, PyAny>>,
        cost_ref_usd: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let d = RewardWeights::default();
        let real = |v, field, default| {
            Ok::<_, PyErr>(convert::optional_real(v, field)?.unwrap_or(default))
        };
        let weights = RewardWeights {
            success: real(success, "success", d.success)?,
            latency: real(latency, "latency", d.latency)?,
            cost: real(cost, "cost", d.cost)?,
            quality: real(quality, "quality", d.quality)?,
            latency_ref_s: real(latency_ref_s, "latency_ref_s", d.latency_ref_s)?,
            cost_ref_usd: real(cost_ref_usd, "cost_ref_usd", d.cost_ref_usd)?,
        };
        self.lock().table.set_reward_weights(weights).map_err(to_py)
    }

    #[pyo3(signature = (failure_threshold=None, recovery_threshold=None, base_cooldown_s=None, max_cooldown_s=None, error_rate_threshold=None, error_rate_window=None))]
    fn configure_breaker(
        &self,
        failure_threshold: Option<&Bound<'_, PyAny>>,
        recovery_threshold: Option<&Bound<'_, PyAny>>,
        base_cooldown_s: Option<&Bound<'_, PyAny>>,
        max_cooldown_s: Option<&Bound<'_, PyAny>>,
        error_rate_threshold: Option<&Bound<'_, PyAny>>,
        error_rate_window: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let d = BreakerConfig::default();
        let real = |v, field, default| {
            Ok::<_, PyErr>(convert::optional_real(v, field)?.unwrap_or(default))
        };
        let positive = |v, field, default| {
            Ok::<_, PyErr>(convert::optional_count32(v, field, 1)?.unwrap_or(default))
        };
        let config = BreakerConfig {
            failure_threshold: positive(
                failure_threshold,
                "failure_threshold",
                d.failure_threshold,
            )?,
            recovery_threshold: positive(
                recovery_threshold,
                "recovery_threshold",
                d.recovery_threshold,
            )?,
            base_cooldown_s: real(base_cooldown_s, "base_cooldown_s", d.base_cooldown_s)?,
            max_cooldown_s: real(max_cooldown_s, "max_cooldown_s", d.max_cooldown_s)?,
            error_rate_threshold: real(
                error_rate_threshold,
                "error_rate_threshold",
                d.error_rate_threshold,
            )?,
            error_rate_window: positive(
                error_rate_window,
                "error_rate_window",
                d.error_rate_window,
            )?,
        };
        self.lock().table.set_breaker_config(config).map_err(to_py)
    }

    /// Seed Thompson sampling's draws (the table's and the contextual
    /// router's); the run from here on is reproducible.
    fn seed(&self, seed: &Bound<'_, PyAny>) -> PyResult<()> {
        let seed = convert::count(seed, "seed", 0)?;
        let mut guard = self.lock();
        guard.table.seed(seed);
        if let Some(routing) = guard.routing.as_mut() {
            routing.seed(seed);
        }
        Ok(())
    }

    fn set_pending_timeout(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let seconds = convert::real(seconds, "pending_timeout")?;
        self.lock()
            .table
            .set_pending_timeout(seconds)
            .map_err(to_py)
    }

    /// Sessions expire after `ttl` seconds without a selection and at most
    /// `max_sessions` are held (the least recently used is evicted first).
    fn configure_sessions(
        &self,
        ttl: &Bound<'_, PyAny>,
        max_sessions: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let ttl = convert::real(ttl, "session_ttl")?;
        // The range is the core's, so the message states the real bound.
        let max_sessions = convert::integer(max_sessions, "max_sessions", 1, MAX_SESSIONS as i128)?;
        let config = SessionConfig::new(ttl, max_sessions as u64).map_err(to_py)?;
        self.lock().table.configure_sessions(config);
        Ok(())
    }

    /// `(held, evicted, allocated)`: sessions bound now, sessions evicted by
    /// the `max_sessions` bound so far, and entries allocated.
    fn session_counts(&self) -> (usize, u64, usize) {
        let guard = self.lock();
        let sessions = guard.table.sessions();
        (sessions.len(), sessions.evicted(), sessions.allocated())
    }

    /// Hash session ids with `secret` (what the workers of one shared state
    /// agree on); sessions bound so far are forgotten.
    fn set_session_secret(&self, secret: &Bound<'_, PyAny>) -> PyResult<()> {
        let secret = convert::count(secret, "secret", 0)?;
        self.lock().table.set_session_secret(secret);
        Ok(())
    }

    /// Record session changes for `take_session_changes` (the shared
    /// state's sync thread calls this once).
    fn start_sharing_sessions(&self) {
        self.lock().table.start_sharing_sessions();
    }

    /// The sessions bound (`"bound"`), moved (`"moved"`) or used again
    /// (`"touched"`) since the last call: `(key, model, change)`, the key as
    /// 32 hex digits; forgets them.
    fn take_session_changes(&self) -> Vec<(String, String, &'static str)> {
        let changes = self.lock().table.take_session_changes();
        changes
            .into_iter()
            .map(|(key, model, change)| {
                let change = match change {
                    Change::Touched => "touched",
                    Change::Bound => "bound",
                    Change::Moved => "moved",
                };
                (core::hash::to_hex(key), model, change)
            })
            .collect()
    }

    /// Apply shared bindings `(key, model, version)` (key as 32 hex
    /// digits): a newer version replaces this worker's binding unless the
    /// session changed here since its changes were taken.
    fn apply_shared_sessions(&self, bindings: Vec<(String, String, u64)>) -> PyResult<()> {
        let mut parsed = Vec::with_capacity(bindings.len());
        for (key, model, version) in bindings {
            let key = u128::from_str_radix(&key, 16)
                .ok()
                .filter(|_| key.len() == 32)
                .ok_or_else(|| convert::invalid("session key", format!("{key:?}")))?;
            parsed.push((key, model, version));
        }
        let mut guard = self.lock();
        for (key, model, version) in &parsed {
            guard.table.apply_shared_session(*key, model, *version);
        }
        Ok(())
    }

    /// Set the object called back after selections (see the `listener`
    /// field: `_on_probe` and `_no_eligible_error`); `None` to stop.
    fn set_listener(&self, listener: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut *self.listener.lock(), listener);
        drop(old);
    }

    /// Register `model` (any Python object, returned by selections); returns
    /// its slot. With a `deployment`, the core knows it as `"name@deployment"`.
    #[pyo3(signature = (model, name, provider, capabilities, context_length=None, input_price_per_million=None, output_price_per_million=None, request_fee=None, priced=None, declared_speed=None, rpm=None, tpm=None, tags=None, deployment=None))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        py: Python<'_>,
        model: Py<PyAny>,
        name: &Bound<'_, PyAny>,
        provider: &Bound<'_, PyAny>,
        capabilities: &Bound<'_, PyAny>,
        context_length: Option<&Bound<'_, PyAny>>,
        input_price_per_million: Option<&Bound<'_, PyAny>>,
        output_price_per_million: Option<&Bound<'_, PyAny>>,
        request_fee: Option<&Bound<'_, PyAny>>,
        priced: Option<&Bound<'_, PyAny>>,
        declared_speed: Option<&Bound<'_, PyAny>>,
        rpm: Option<&Bound<'_, PyAny>>,
        tpm: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        deployment: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u32> {
        let zero = 0.0f64.into_pyobject(py)?.into_any();
        let no = false.into_pyobject(py)?.to_owned().into_any();
        let zero_int = 0u32.into_pyobject(py)?.into_any();
        let spec = model_spec(
            name,
            provider,
            capabilities,
            context_length.unwrap_or(&zero_int),
            input_price_per_million.unwrap_or(&zero),
            output_price_per_million.unwrap_or(&zero),
            request_fee.unwrap_or(&zero),
            priced.unwrap_or(&no),
            declared_speed,
            convert::rate_limits(rpm, tpm)?,
            tags,
            deployment,
        )?;
        let name = spec.name.clone();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let slot = inner.table.register(spec).map_err(to_py)?;
        if let Some(routing) = inner.routing.as_mut() {
            if let Err(err) = routing.add(slot, &name) {
                inner.table.unregister(&name).map_err(to_py)?;
                return Err(to_py(err));
            }
        }
        let i = slot as usize;
        if guard.models.len() <= i {
            guard.models.resize_with(i + 1, || None);
        }
        guard.models[i] = Some(model);
        Ok(slot)
    }

    /// Replace a registered model's declared capabilities, window, prices,
    /// speed or rate limits.
    #[pyo3(signature = (slot, name, provider, capabilities, context_length, input_price_per_million, output_price_per_million, request_fee, priced, declared_speed=None, rpm=None, tpm=None, tags=None, deployment=None))]
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        slot: u32,
        name: &Bound<'_, PyAny>,
        provider: &Bound<'_, PyAny>,
        capabilities: &Bound<'_, PyAny>,
        context_length: &Bound<'_, PyAny>,
        input_price_per_million: &Bound<'_, PyAny>,
        output_price_per_million: &Bound<'_, PyAny>,
        request_fee: &Bound<'_, PyAny>,
        priced: &Bound<'_, PyAny>,
        declared_speed: Option<&Bound<'_, PyAny>>,
        rpm: Option<&Bound<'_, PyAny>>,
        tpm: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        deployment: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limits = convert::rate_limits(rpm, tpm)?;
        let spec = model_spec(
            name,
            provider,
            capabilities,
            context_length,
            input_price_per_million,
            output_price_per_million,
            request_fee,
            priced,
            declared_speed,
            limits,
            tags,
            deployment,
        )?;
        self.lock().table.update_spec(slot, spec).map_err(to_py)
    }

    /// Remove a model by name; returns the slot it held. Its outstanding
    /// tickets stop counting (they can no longer be reported).
    fn unregister(&self, name: &str) -> PyResult<u32> {
        let (slot, object) = {
            let mut guard = self.lock();
            let slot = guard.table.unregister(name).map_err(to_py)?;
            if let Some(routing) = guard.routing.as_mut() {
                routing.remove(slot).map_err(to_py)?;
            }
            let object = guard.models[slot as usize].take();
            (slot, object)
        };
        drop(object); // outside the lock: dropping may run a finaliser
        Ok(slot)
    }

    /// The object registered in `slot`.
    fn model(&self, py: Python<'_>, slot: u32) -> PyResult<Py<PyAny>> {
        let guard = self.lock();
        match guard.models.get(slot as usize) {
            Some(Some(m)) => Ok(m.clone_ref(py)),
            _ => Err(to_py(CoreError::UnknownSlot(slot))),
        }
    }

    fn slot_of(&self, name: &str) -> Option<u32> {
        self.lock().table.slot_of(name)
    }

    /// Add the routing alias `name` for `members` (logical model names or
    /// registered names, at least one); names of models and aliases share
    /// one namespace (a clash is `DuplicateModelError`, an unknown member
    /// `KeyError`).
    fn add_alias(&self, name: &Bound<'_, PyAny>, members: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = convert::label(name, "alias")?;
        let members = convert::each(members, "members", convert::label)?;
        self.lock().table.add_alias(&name, &members).map_err(to_py)
    }

    /// Remove the routing alias `name`; returns its members (`KeyError`
    /// when there is no such alias).
    fn remove_alias(&self, name: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let name = convert::label(name, "alias")?;
        self.lock().table.remove_alias(&name).map_err(to_py)
    }

    /// Every routing alias and its members, by name.
    fn aliases(&self) -> Vec<(String, Vec<String>)> {
        self.lock().table.aliases()
    }

    /// The names of the registered models in the alias or logical model
    /// `name` (in slot order), or `None` when there is none of that name.
    fn group_members(&self, name: &Bound<'_, PyAny>) -> PyResult<Option<Vec<String>>> {
        let name = convert::label(name, "alias")?;
        let guard = self.lock();
        let table = &guard.table;
        Ok(table.group_slots(&name).map(|slots| {
            slots
                .into_iter()
                .filter_map(|slot| table.spec(slot).ok().map(|s| s.name.clone()))
                .collect()
        }))
    }

    fn __len__(&self) -> usize {
        self.lock().table.len()
    }

    /// The best model for a request; its ticket is held for this task's
    /// next call of that model. `constraints` is an object whose
    /// `request()` gives a `Request` (a `ModelConstraints`), instead of the
    /// other keywords. `prompt` (text or chat messages), `embedding` (1-D
    /// float32 array) and `willingness_to_pay` (USD per +1.0 quality) are
    /// the contextual router's; without it they are validated and ignored.
    /// When no model satisfies the request, raises the listener's error
    /// (else `NoEligible`), explained from the same snapshot.
    #[pyo3(signature = (capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude_models=None, *, input_tokens=None, output_tokens=None, constraints=None, prompt=None, embedding=None, willingness_to_pay=None, tags=None, session_id=None, alias=None, tenant=None))]
    #[allow(clippy::too_many_arguments)]
    fn select_model(
        &self,
        py: Python<'_>,
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<&Bound<'_, PyAny>>,
        min_speed: Option<&Bound<'_, PyAny>>,
        context_length: Option<&Bound<'_, PyAny>>,
        exclude_models: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        constraints: Option<&Bound<'_, PyAny>>,
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        session_id: Option<&Bound<'_, PyAny>>,
        alias: Option<&Bound<'_, PyAny>>,
        tenant: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let request = Self::request_of(
            py,
            [
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens,
                output_tokens,
                tags,
                session_id,
                alias,
                tenant,
            ],
            constraints,
        )?;
        let routed = RoutedInput::parse(prompt, embedding, willingness_to_pay)?;
        Ok(self.select_and_hold(py, &request, &routed)?.model)
    }

    /// `select_model` for a call the registry makes itself (failover):
    /// the ticket is held the same way; returns `(model, request_id)`.
    #[pyo3(signature = (request, *, prompt=None, embedding=None, willingness_to_pay=None))]
    fn select_held(
        &self,
        py: Python<'_>,
        request: &Request,
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Py<PyAny>, Option<u64>)> {
        let routed = RoutedInput::parse(prompt, embedding, willingness_to_pay)?;
        let picked = self.select_and_hold(py, request, &routed)?;
        Ok((picked.model, picked.request_id))
    }

    /// Select like `select_model`, without holding the ticket:
    /// `(model, slot, ticket, request_id)` (`request_id` is `None` without
    /// the contextual strategy).
    #[pyo3(signature = (capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude_models=None, *, input_tokens=None, output_tokens=None, constraints=None, prompt=None, embedding=None, willingness_to_pay=None, tags=None, session_id=None, alias=None, tenant=None))]
    #[allow(clippy::too_many_arguments)]
    fn select(
        &self,
        py: Python<'_>,
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<&Bound<'_, PyAny>>,
        min_speed: Option<&Bound<'_, PyAny>>,
        context_length: Option<&Bound<'_, PyAny>>,
        exclude_models: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        constraints: Option<&Bound<'_, PyAny>>,
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        session_id: Option<&Bound<'_, PyAny>>,
        alias: Option<&Bound<'_, PyAny>>,
        tenant: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Selected> {
        let request = Self::request_of(
            py,
            [
                capabilities,
                max_cost,
                min_speed,
                context_length,
                exclude_models,
                input_tokens,
                output_tokens,
                tags,
                session_id,
                alias,
                tenant,
            ],
            constraints,
        )?;
        let routed = RoutedInput::parse(prompt, embedding, willingness_to_pay)?;
        Ok(self.select_once(py, &request, &routed, true)?.selected())
    }

    /// Select for `n` requests at once (at most `MAX_SELECT_MANY`), each
    /// seeing the earlier ones as pending: `(model, slot, ticket,
    /// request_id)` tuples, fewer if models ran out; `NoEligible` if none is
    /// eligible at all.
    #[pyo3(signature = (n, request, *, prompt=None, embedding=None, willingness_to_pay=None))]
    fn select_many(
        &self,
        py: Python<'_>,
        n: &Bound<'_, PyAny>,
        request: &Request,
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Selected>> {
        let n = usize::try_from(convert::count(n, "n", 0)?).unwrap_or(usize::MAX);
        let routed = RoutedInput::parse(prompt, embedding, willingness_to_pay)?;
        let prompted = routed.prompted();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let c = request.resolve(&inner.table)?;
        let selections: Vec<(core::Selection, Option<u64>)> = match inner.routing.as_mut() {
            Some(routing) => routing
                .select_many(&mut inner.table, &c, &prompted, n)
                .map_err(to_py)?
                .into_iter()
                .map(|r| (r.selection, Some(r.request_id)))
                .collect(),
            None => inner
                .table
                .select_many(&c, n)
                .map_err(to_py)?
                .into_iter()
                .map(|sel| (sel, None))
                .collect(),
        };
        if selections.is_empty() && n > 0 {
            let explanation = inner.explanation(py, &c, &prompted)?;
            drop(guard);
            return Err(self.no_eligible(py, explanation, request));
        }
        Ok(selections
            .iter()
            .map(|(sel, request_id)| inner.picked(py, sel, *request_id).selected())
            .collect())
    }

    /// Every model's verdict for a request (with the router's predictions
    /// for the prompt under the contextual strategy), without changing anything.
    #[pyo3(signature = (request, *, prompt=None, embedding=None, willingness_to_pay=None))]
    fn explain(
        &self,
        py: Python<'_>,
        request: &Request,
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Explanation> {
        let routed = RoutedInput::parse(prompt, embedding, willingness_to_pay)?;
        let mut guard = self.lock_current();
        let c = request.resolve(&guard.table)?;
        guard.explanation(py, &c, &routed.prompted())
    }

    /// `(names, bytes)`: every registered model's score for a request
    /// (little-endian f64, `-inf` where not eligible; under the contextual
    /// strategy the value quality − cost / willingness_to_pay the next
    /// selection maximises), without changing anything.
    #[pyo3(signature = (request, *, prompt=None, embedding=None, willingness_to_pay=None))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Vec<String>, Bound<'py, PyBytes>)> {
        let routed = RoutedInput::parse(prompt, embedding, willingness_to_pay)?;
        let (names, values) = {
            let mut guard = self.lock_current();
            let inner = &mut *guard;
            let table = &inner.table;
            let c = request.resolve(table)?;
            let scores = match inner.routing.as_mut() {
                Some(routing) => routing
                    .scores(table, &c, &routed.prompted())
                    .map_err(to_py)?,
                None => table.scores(&c),
            };
            let mut names = Vec::with_capacity(table.len());
            let mut values = Vec::with_capacity(table.len());
            for (slot, score) in scores.into_iter().enumerate() {
                if let Ok(spec) = table.spec(slot as u32) {
                    names.push(spec.name.clone());
                    values.push(score);
                }
            }
            (names, values)
        };
        Ok((names, f64_bytes(py, &values)))
    }

    /// Bind `request`'s session (if it has one) to `model` in `slot`, chosen
    /// outside the core (a user-written selector); a model no longer in
    /// `slot` binds nothing.
    fn bind_session(&self, model: &Bound<'_, PyAny>, slot: u32, request: &Request) -> PyResult<()> {
        let mut guard = self.lock();
        let registered = guard.models.get(slot as usize).and_then(Option::as_ref);
        if registered.is_none_or(|m| m.as_ptr() != model.as_ptr()) {
            return Ok(());
        }
        let c = request.resolve(&guard.table)?;
        let now = guard.table.now();
        guard.table.settle_session_on(&c, slot, now).map_err(to_py)
    }

    /// Fold in the outcome of a selection of `model` in `slot` under
    /// `ticket` (0: none), its fields converted as `Outcome`'s; returns the
    /// breaker's `Transition`, or `None` when it did not change.
    /// A stale ticket, or a model that is not the one in `slot`, raises
    /// `StaleTicketError` and changes nothing.
    /// With the contextual strategy, a `request_id` (0: none) and a
    /// `quality` also teach the router, in the same step: an unknown or
    /// expired id raises `UnknownRequestError` and changes nothing.
    #[pyo3(signature = (model, slot, ticket, success, latency, *, error_class=None, time_to_first_token=None, input_tokens=None, output_tokens=None, cost=None, quality=None, retry_after=None, request_id=0))]
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        model: &Bound<'_, PyAny>,
        slot: u32,
        ticket: u64,
        success: &Bound<'_, PyAny>,
        latency: &Bound<'_, PyAny>,
        error_class: Option<&Bound<'_, PyAny>>,
        time_to_first_token: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        quality: Option<&Bound<'_, PyAny>>,
        retry_after: Option<&Bound<'_, PyAny>>,
        request_id: u64,
    ) -> PyResult<Option<PyTransition>> {
        let outcome = outcome(
            success,
            latency,
            error_class,
            time_to_first_token,
            input_tokens,
            output_tokens,
            cost,
            quality,
            retry_after,
            core::ProviderLimits::default(),
            &OutcomeFields::ONE,
        )?;
        let ticket = (ticket != 0).then_some(ticket);
        let mut guard = self.lock();
        let registered = guard.models.get(slot as usize).and_then(Option::as_ref);
        if registered.is_none_or(|m| m.as_ptr() != model.as_ptr()) {
            drop(guard);
            return Err(StaleTicketError::new_err(format!(
                "this selection is not of the model registered in slot {slot} of this registry"
            )));
        }
        let inner = &mut *guard;
        let teach = match (inner.routing.as_ref(), outcome.quality) {
            (Some(routing), Some(quality)) if request_id != 0 => {
                if !routing.is_pending(&inner.table, request_id) {
                    drop(guard);
                    return Err(unknown_request(request_id));
                }
                Some(quality)
            }
            _ => None,
        };
        let transition = inner
            .table
            .report(slot, ticket, &outcome)
            .map(PyTransition::of)
            .map_err(to_py)?;
        if let (Some(routing), Some(quality)) = (inner.routing.as_mut(), teach) {
            routing
                .report(&inner.table, request_id, quality)
                .map_err(to_py)?;
        }
        Ok(transition)
    }

    /// Delayed feedback: the quality in [0, 1] of the contextual decision
    /// `request_id`; returns the name of the model it was about.
    /// `UnknownRequestError` when the id is unknown, already reported, or expired.
    fn report_quality(
        &self,
        request_id: &Bound<'_, PyAny>,
        quality: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        let request_id = convert::count(request_id, "request_id", 1)?;
        let quality = convert::real(quality, "quality")?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let routing = inner.routing.as_mut().ok_or_else(not_contextual)?;
        let slot = routing
            .report(&inner.table, request_id, quality)
            .map_err(to_py)?;
        Ok(inner.table.spec(slot).map_err(to_py)?.name.clone())
    }

    /// Use the contextual router (`ContextualSelector`'s options, as
    /// `ContextualRouter` takes them, and the default `willingness_to_pay`)
    /// for every later selection; registered models start at the prior.
    #[pyo3(signature = (willingness_to_pay, **options))]
    fn enable_routing(
        &self,
        willingness_to_pay: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let willingness_to_pay = convert::real(willingness_to_pay, "willingness_to_pay")?;
        let config: RouterConfig = router_config(options)?;
        let mut routing = Routing::new(config, willingness_to_pay).map_err(to_py)?;
        let mut guard = self.lock();
        for slot in 0..guard.table.capacity() as u32 {
            if let Ok(spec) = guard.table.spec(slot) {
                routing.add(slot, &spec.name).map_err(to_py)?;
            }
        }
        guard.routing = Some(routing);
        Ok(())
    }

    /// Whether selections go through the contextual router.
    #[getter]
    fn contextual(&self) -> bool {
        self.lock().routing.is_some()
    }

    /// The default willingness to pay of the contextual router.
    #[getter]
    fn willingness_to_pay(&self) -> PyResult<f64> {
        Ok(self.lock().routing()?.default_willingness_to_pay())
    }

    /// Fit the contextual router from an evaluation table: `qualities` maps
    /// a registered model's name to one quality in [0, 1] per prompt;
    /// `costs` (name → USD per call) price models that have no price.
    #[pyo3(signature = (prompts, qualities, costs=None))]
    fn calibrate(
        &self,
        prompts: &Bound<'_, PyAny>,
        qualities: &Bound<'_, PyAny>,
        costs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limit = core::routing::MAX_ROUTED_PROMPT_BYTES;
        let prompts = convert::each(prompts, "prompts", |p, _| convert::prompt_text(p, limit))?;
        let qualities = crate::router::quality_columns(qualities)?;
        let costs = crate::router::cost_map(costs, "costs")?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let slot = |name: &str| {
            inner
                .table
                .slot_of(name)
                .ok_or_else(|| to_py(CoreError::UnknownModel(name.to_owned())))
        };
        let mut columns = Vec::with_capacity(qualities.len());
        for (name, values) in qualities {
            columns.push((slot(&name)?, values));
        }
        let mut prices = Vec::with_capacity(costs.len());
        for (name, cost) in costs {
            prices.push((slot(&name)?, cost));
        }
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        inner
            .routing()?
            .calibrate(&texts, &columns, &prices)
            .map_err(to_py)
    }

    /// Start recording the contextual router's changes for sharing across
    /// workers (the shared state's sync thread calls this once).
    fn router_start_sharing(&self) -> PyResult<()> {
        self.lock().routing()?.start_sharing();
        Ok(())
    }

    /// The router's changes since the last call, by model name:
    /// `(model, feature, Δ precision, Δ precision × mean)`; forgets them.
    fn router_take_changes(&self) -> PyResult<Vec<NamedChange>> {
        self.lock().routing()?.take_changes().map_err(to_py)
    }

    /// Apply every worker's summed changes (models not registered here are skipped).
    fn router_apply_shared(&self, sums: Vec<NamedChange>) -> PyResult<()> {
        self.lock().routing()?.apply_shared(&sums).map_err(to_py)
    }

    /// The contextual router's learned state (the binary format of
    /// `orchestrator_core::contextual::persist`).
    fn router_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let state = self.lock().routing()?.save();
        Ok(PyBytes::new(py, &state))
    }

    /// Load `router_state()` bytes: registered models found in the state
    /// keep what it learned, the others start at the prior; pending
    /// decisions are forgotten.
    fn load_router_state(&self, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let state = convert::state_bytes(state)?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let routing = inner.routing.as_mut().ok_or_else(not_contextual)?;
        routing.load(state, &inner.table).map_err(to_py)
    }

    /// Fold in a measured call's outcome: like `report`, except that a
    /// ticket that expired while the call ran still counts the outcome.
    fn record(&self, slot: u32, ticket: u64, outcome: &Outcome) -> PyResult<Option<PyTransition>> {
        let ticket = (ticket != 0).then_some(ticket);
        self.lock()
            .table
            .record_call(slot, ticket, &outcome.inner)
            .map(PyTransition::of)
            .map_err(to_py)
    }

    /// Take this task's held ticket for `slot` (0 when none), for the call
    /// that is about to run.
    /// Its call starts now: while the breaker is half-open it is the probe.
    fn take_held(&self, py: Python<'_>, slot: u32) -> PyResult<u64> {
        let Some(ticket) = held::take(py, self.id, slot)? else {
            return Ok(0);
        };
        // The model may have been unregistered since: then nothing starts.
        let _ = self.lock().table.start_call(slot, ticket);
        Ok(ticket)
    }

    /// Report many outcomes from equal-length sequences; every value is
    /// converted and validated before any is applied. Returns each
    /// outcome's `Transition` (`None` where the breaker did not change).
    #[pyo3(signature = (slots, tickets, successes, latencies, *, error_classes=None, input_tokens=None, output_tokens=None, costs=None, qualities=None, request_ids=None))]
    #[allow(clippy::too_many_arguments)]
    fn report_many(
        &self,
        py: Python<'_>,
        slots: Vec<u32>,
        tickets: Vec<u64>,
        successes: &Bound<'_, PyAny>,
        latencies: &Bound<'_, PyAny>,
        error_classes: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        costs: Option<&Bound<'_, PyAny>>,
        qualities: Option<&Bound<'_, PyAny>>,
        request_ids: Option<Vec<u64>>,
    ) -> PyResult<Vec<Option<PyTransition>>> {
        let n = slots.len();
        let items = |v: Option<&Bound<'_, PyAny>>,
                     field: &'static str|
         -> PyResult<Option<Vec<Py<PyAny>>>> {
            let list = convert::optional_each(v, field, |x, _| Ok(x.clone().unbind()))?;
            match list {
                Some(list) if list.len() != n => Err(convert::invalid(
                    field,
                    format!("{} values for {n} selections", list.len()),
                )),
                other => Ok(other),
            }
        };
        let f = &OutcomeFields::MANY;
        let required = |v: &Bound<'_, PyAny>, field: &'static str| {
            items(Some(v), field)?.ok_or_else(|| {
                convert::invalid(
                    field,
                    format!("None for {n} selections (a list is required)"),
                )
            })
        };
        let successes = required(successes, f.success)?;
        let latencies = required(latencies, f.latency)?;
        let error_classes = items(error_classes, f.error_class)?;
        let input_tokens = items(input_tokens, f.input_tokens)?;
        let output_tokens = items(output_tokens, f.output_tokens)?;
        let costs = items(costs, f.cost)?;
        let qualities = items(qualities, f.quality)?;
        if tickets.len() != n {
            return Err(convert::invalid(
                "tickets",
                format!("{} values for {n} selections", tickets.len()),
            ));
        }
        let mut outcomes = Vec::with_capacity(n);
        {
            let at =
                |v: &Option<Vec<Py<PyAny>>>, i: usize| v.as_ref().map(|v| v[i].bind(py).clone());
            for i in 0..n {
                outcomes.push((
                    slots[i],
                    (tickets[i] != 0).then_some(tickets[i]),
                    outcome(
                        successes[i].bind(py),
                        latencies[i].bind(py),
                        at(&error_classes, i).as_ref(),
                        None,
                        at(&input_tokens, i).as_ref(),
                        at(&output_tokens, i).as_ref(),
                        at(&costs, i).as_ref(),
                        at(&qualities, i).as_ref(),
                        None,
                        core::ProviderLimits::default(),
                        f,
                    )?,
                ));
            }
        }
        if request_ids.as_ref().is_some_and(|ids| ids.len() != n) {
            return Err(convert::invalid(
                "request_ids",
                format!(
                    "{} values for {n} selections",
                    request_ids.map_or(0, |ids| ids.len())
                ),
            ));
        }
        // The contextual decisions these qualities teach: (request id, quality).
        let teach: Vec<(u64, f64)> = request_ids
            .iter()
            .flatten()
            .zip(&outcomes)
            .filter_map(|(&id, (_, _, o))| Some((id, o.quality?)).filter(|_| id != 0))
            .collect();
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(routing) = inner.routing.as_ref() {
            // Every decision is checked before anything is applied.
            let mut seen = std::collections::HashSet::with_capacity(teach.len());
            if let Some(&(id, _)) = teach
                .iter()
                .find(|(id, _)| !seen.insert(*id) || !routing.is_pending(&inner.table, *id))
            {
                drop(guard);
                return Err(unknown_request(id));
            }
        }
        let transitions = inner.table.report_many(&outcomes).map_err(to_py)?;
        if let Some(routing) = inner.routing.as_mut() {
            for &(id, quality) in &teach {
                routing.report(&inner.table, id, quality).map_err(to_py)?;
            }
        }
        Ok(transitions.into_iter().map(PyTransition::of).collect())
    }

    /// Release a ticket whose request was abandoned without an outcome;
    /// its rate-limit reservation and budget hold return unless the request
    /// was `sent` (then its expected cost is spent). A call stopped after it
    /// was sent that knows what it used (a stream closed early) gives its
    /// `input_tokens`/`output_tokens` (and `cost`, when the provider billed
    /// one): its budgets are charged that instead.
    #[pyo3(signature = (slot, ticket, sent=None, *, input_tokens=None, output_tokens=None, cost=None))]
    fn cancel(
        &self,
        slot: u32,
        ticket: u64,
        sent: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let sent = match sent {
            Some(v) => convert::boolean(v, "sent")?,
            None => false,
        };
        let tokens = |v: Option<&Bound<'_, PyAny>>, field| {
            convert::optional_integer(v, field, 0, i128::from(u64::MAX))
                .map(|n| n.map(|n| n as u64))
        };
        let input = tokens(input_tokens, "input_tokens")?;
        let output = tokens(output_tokens, "output_tokens")?;
        let cost = convert::optional_real(cost, "cost")?;
        let used = input.is_some() || output.is_some() || cost.is_some();
        if used && !sent {
            return Err(PyValueError::new_err(
                "invalid sent: False with a usage (only a sent call used anything)",
            ));
        }
        let mut guard = self.lock();
        if used {
            let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
            guard.table.cancel_spent(slot, ticket, input, output, cost)
        } else {
            guard.table.cancel(slot, ticket, sent)
        }
        .map_err(to_py)
    }

    /// Add a spend budget: `scope` is one of `BUDGET_SCOPES` and `value`
    /// the model, provider, tag or tenant it names; `limit_usd` per
    /// `period` (one of `BUDGET_PERIODS`, calendar UTC).
    fn add_budget(
        &self,
        name: &Bound<'_, PyAny>,
        scope: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        limit_usd: &Bound<'_, PyAny>,
        period: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let spec = crate::budget::spec(name, scope, value, limit_usd, period)?;
        self.lock().table.add_budget(spec).map_err(to_py)
    }

    fn remove_budget(&self, name: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = convert::label(name, "name")?;
        self.lock().table.remove_budget(&name).map_err(to_py)
    }

    /// Every budget's state as a dict (see `budget::state`), in the order added.
    fn budgets<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let states = self.lock_current().table.budgets();
        states.iter().map(|s| crate::budget::state(py, s)).collect()
    }

    /// Set (`None`: clear) how many nano-USD of a budget this registry may
    /// spend in its current period, at most its limit: a worker's share of
    /// a budget shared across workers.
    fn set_budget_allowance(
        &self,
        name: &Bound<'_, PyAny>,
        allowance_nanos: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let name = convert::label(name, "name")?;
        let allowance =
            convert::optional_integer(allowance_nanos, "allowance_nanos", 0, i128::from(u64::MAX))?
                .map(|n| n as u64);
        self.lock()
            .table
            .set_budget_allowance(&name, allowance)
            .map_err(to_py)
    }

    /// Budget holds outstanding (selections a budget covers, unreported).
    fn budget_holds(&self) -> usize {
        self.lock().table.budget_holds()
    }

    /// The UTC time (Unix seconds) budgets' calendar periods follow.
    fn unix_time(&self) -> f64 {
        self.lock().table.unix_time()
    }

    /// Set the UTC time budgets' periods follow to `unix_time` now (tests;
    /// a host whose clock was corrected after start).
    fn set_wall_clock(&self, unix_time: &Bound<'_, PyAny>) -> PyResult<()> {
        let unix = convert::real(unix_time, "unix_time")?;
        self.lock().table.set_wall_clock(unix).map_err(to_py)
    }

    /// Record an active health check's verdict; returns the breaker's
    /// `Transition`, or `None`.
    fn record_health_check(
        &self,
        slot: u32,
        healthy: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PyTransition>> {
        let healthy = convert::boolean(healthy, "healthy")?;
        self.lock()
            .table
            .record_health_check(slot, healthy)
            .map(PyTransition::of)
            .map_err(to_py)
    }

    /// The breaker of a slot as a dict (`retry_in`: seconds until a probe).
    fn breaker<'py>(&self, py: Python<'py>, slot: u32) -> PyResult<Bound<'py, PyDict>> {
        let (b, retry_in) = {
            let guard = self.lock();
            let b = guard.table.breaker(slot).map_err(to_py)?;
            (b, b.retry_in(guard.table.now()))
        };
        let d = PyDict::new(py);
        d.set_item("state", b.state.name())?;
        d.set_item("consecutive_failures", b.consecutive_failures)?;
        d.set_item("consecutive_successes", b.consecutive_successes)?;
        d.set_item("trips", b.trips)?;
        d.set_item("retry_in", retry_in)?;
        d.set_item("error_rate", b.error_rate)?;
        d.set_item("outcomes_seen", b.outcomes_seen)?;
        Ok(d)
    }

    /// What was observed of a slot, as a dict.
    fn snapshot<'py>(&self, py: Python<'py>, slot: u32) -> PyResult<Bound<'py, PyDict>> {
        self.observed(py, |_| Ok(slot))
    }

    /// What was observed of the model named `name`, as a dict: the name is
    /// looked up and the statistics read under one lock, so a concurrent
    /// unregister gives `KeyError`, never another model's slot.
    fn snapshot_of<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        self.observed(py, |table| {
            table
                .slot_of(name)
                .ok_or_else(|| CoreError::UnknownModel(name.to_owned()))
        })
    }

    /// `(bytes, names)`: the statistics matrix of the registered models as
    /// little-endian f64 rows (columns `STATS_COLUMNS`), with their names,
    /// from one snapshot.
    fn stats_matrix<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, Vec<String>) {
        let (rows, names) = {
            let guard = self.lock_current();
            let table = &guard.table;
            let cols = Table::STATS_COLUMNS.len();
            let data = table.stats_matrix();
            let mut rows = Vec::with_capacity(table.len() * cols);
            let mut names = Vec::with_capacity(table.len());
            for (slot, row) in data.chunks(cols).enumerate() {
                if let Ok(spec) = table.spec(slot as u32) {
                    names.push(spec.name.clone());
                    rows.extend_from_slice(row);
                }
            }
            (rows, names)
        };
        (f64_bytes(py, &rows), names)
    }

    /// Outcomes observed since the last call, per model, as tuples
    /// `(slot, requests, successes, failures_by_class, reward_sum,
    /// reward_sq_sum, input_tokens, output_tokens, cost)`; resets them.
    fn take_deltas(&self) -> Vec<DeltaRow> {
        let deltas = self.lock().table.take_deltas();
        deltas
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
                return Err(convert::invalid(
                    "failures_by_class",
                    format!(
                        "{} values, expected {}",
                        failures.len(),
                        failures_by_class.len()
                    ),
                ));
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
        self.lock().table.restore_deltas(&deltas);
        Ok(())
    }

    /// Set other workers' statistics of a slot (effective count, reward sum,
    /// squared reward sum).
    fn set_shared(&self, slot: u32, n: f64, reward_sum: f64, reward_sq_sum: f64) -> PyResult<()> {
        let stats = core::SharedStats {
            n,
            reward_sum,
            reward_sq_sum,
        };
        self.lock().table.set_shared(slot, stats).map_err(to_py)
    }

    /// Other workers' statistics of a slot: `(n, reward_sum, reward_sq_sum)`.
    fn shared(&self, slot: u32) -> PyResult<(f64, f64, f64)> {
        let s = self.lock().table.shared(slot).map_err(to_py)?;
        Ok((s.n, s.reward_sum, s.reward_sq_sum))
    }

    /// A slot's rate-limit window as a dict: the configured `rpm`/`tpm`
    /// (`None`: unlimited), the `requests`/`tokens` in the last minute, and
    /// the provider's learned caps as `(remaining, resets_in)` or `None`.
    fn rate_limits<'py>(&self, py: Python<'py>, slot: u32) -> PyResult<Bound<'py, PyDict>> {
        let w = self.lock_current().table.window(slot).map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("rpm", w.limits.rpm)?;
        d.set_item("tpm", w.limits.tpm)?;
        d.set_item("requests", w.requests)?;
        d.set_item("tokens", w.tokens)?;
        d.set_item("provider_requests", w.provider_requests)?;
        d.set_item("provider_tokens", w.provider_tokens)?;
        Ok(d)
    }

    // ----- rate limits shared across workers (the lease thread's calls) -----

    /// The rate-limit window's length in seconds (default `RATE_LIMIT_WINDOW_S`).
    fn rate_limit_window(&self) -> f64 {
        self.lock().table.rate_limit_window()
    }

    /// Change the rate-limit window's length, for every model.
    fn set_rate_limit_window(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let seconds = convert::real(seconds, "window")?;
        self.lock()
            .table
            .set_rate_limit_window(seconds)
            .map_err(to_py)
    }

    /// Enforce a slot's limits across workers: it admits only within its
    /// leases from now on (`top_up_in`: the lease thread's interval).
    fn share_limits(&self, slot: u32, top_up_in: &Bound<'_, PyAny>) -> PyResult<()> {
        let top_up_in = convert::real(top_up_in, "top_up_in")?;
        self.lock()
            .table
            .share_limits(slot, top_up_in)
            .map_err(to_py)
    }

    /// Stop sharing a slot's limits: what its leases held or owed, as
    /// `(requests, tokens)` lists of `(grant, amount)`.
    fn unshare_limits(&self, slot: u32) -> PyResult<Returns> {
        self.lock().table.unshare_limits(slot).map_err(to_py)
    }

    /// Add a grant of the shared counter of `kind` ("requests" or "tokens").
    fn grant_lease(
        &self,
        slot: u32,
        kind: &Bound<'_, PyAny>,
        grant: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        expires_in: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let kind = leases::kind(kind)?;
        let grant = leases::count(grant, "grant", 1)?;
        let amount = leases::count(amount, "amount", 0)?;
        let expires_in = convert::real(expires_in, "expires_in")?;
        self.lock()
            .table
            .grant_lease(slot, kind, grant, amount, expires_in)
            .map_err(to_py)
    }

    /// What a slot owes back to the shared counters, emptied.
    fn take_lease_returns(&self, slot: u32) -> PyResult<Returns> {
        self.lock().table.take_lease_returns(slot).map_err(to_py)
    }

    /// The shared counters are unreachable: the slot enforces this share
    /// on its local log; what its leases held or owed is returned.
    #[pyo3(signature = (slot, rpm=None, tpm=None))]
    fn fall_back_limits(
        &self,
        slot: u32,
        rpm: Option<&Bound<'_, PyAny>>,
        tpm: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Returns> {
        let share = convert::rate_limits(rpm, tpm)?;
        self.lock()
            .table
            .fall_back_limits(slot, share)
            .map_err(to_py)
    }

    /// The shared counters are back: the slot admits within its leases.
    fn recover_limits(&self, slot: u32) -> PyResult<()> {
        self.lock().table.recover_limits(slot).map_err(to_py)
    }

    /// `(requests, tokens)` the slot admitted in the window that the shared
    /// counters do not know of, now marked charged.
    fn take_unrecorded(&self, slot: u32) -> PyResult<(u32, u64)> {
        self.lock().table.take_unrecorded(slot).map_err(to_py)
    }

    /// A slot's leases as a dict, `None` when its limits are not shared.
    fn shared_limits<'py>(
        &self,
        py: Python<'py>,
        slot: u32,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let state = self.lock().table.shared_limits(slot).map_err(to_py)?;
        state.map(|s| leases::state_dict(py, &s)).transpose()
    }

    fn pending(&self, slot: u32) -> PyResult<u32> {
        self.lock_current().table.pending(slot).map_err(to_py)
    }

    fn outstanding_tickets(&self) -> usize {
        self.lock().table.outstanding_tickets()
    }

    fn now(&self) -> f64 {
        self.lock().table.now()
    }

    /// Move the core clock forward (tests of cool-downs and expiry).
    fn advance_clock(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let seconds = convert::real(seconds, "seconds")?;
        self.lock().table.advance_clock(seconds).map_err(to_py)
    }

    /// Whether the core clock moves only by `advance_clock` (then waiting
    /// in real time brings no slot nearer).
    fn is_virtual_clock(&self) -> bool {
        self.lock().table.is_virtual_clock()
    }

    /// Let the core clock move only by `advance_clock` (simulations).
    fn use_virtual_clock(&self) {
        self.lock().table.use_virtual_clock();
    }

    /// Expire tickets older than the pending timeout now.
    fn sweep(&self) {
        self.lock().table.sweep();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // try_lock: the collector must never wait (neither lock is held
        // across Python code, so it is free whenever the collector runs).
        if let Some(listener) = self.listener.try_lock() {
            if let Some(listener) = listener.as_ref() {
                visit.call(listener)?;
            }
        }
        if let Some(inner) = self.inner.try_lock() {
            for model in inner.models.iter().flatten() {
                visit.call(model)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = self.listener.lock().take();
        drop(old);
    }
}

fn unknown_request(request_id: u64) -> PyErr {
    UnknownRequestError::new_err(format!(
        "request_id {request_id} is unknown, was already reported, or has expired"
    ))
}

fn f64_bytes<'py>(py: Python<'py>, values: &[f64]) -> Bound<'py, PyBytes> {
    let mut raw = Vec::with_capacity(values.len() * 8);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    PyBytes::new(py, &raw)
}
