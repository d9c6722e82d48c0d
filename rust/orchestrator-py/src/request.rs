//! The typed request and outcome that cross from Python into the core.

use orchestrator_core as core;
use orchestrator_core::routing;
use orchestrator_core::{Constraints, Table};
use pyo3::prelude::*;

use crate::convert;
use crate::errors::to_py;

/// One request's constraints, converted and validated (everything but the
/// names of excluded models and required tags, which are resolved under
/// the core's lock).
#[pyclass(frozen, module = "orchestrator._core", from_py_object)]
#[derive(Debug, Clone)]
pub struct Request {
    constraints: Constraints,
    exclude: Vec<String>,
    /// Tags the model must all have, checked and without repeats.
    tags: Vec<String>,
    /// The routing alias or logical model the model must belong to.
    alias: Option<String>,
    /// The token counts as given (`None`: the default request size).
    given_tokens: (Option<u32>, Option<u32>),
    /// The conversation to keep on one model; hashed by the table it is
    /// resolved against (each registry keys its sessions itself).
    session_id: Option<String>,
    /// Whose budgets apply (resolved under the core's lock).
    tenant: Option<String>,
}

impl Request {
    /// The one conversion every selecting and explaining entry point uses.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<&Bound<'_, PyAny>>,
        min_speed: Option<&Bound<'_, PyAny>>,
        context_length: Option<&Bound<'_, PyAny>>,
        exclude_models: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        session_id: Option<&Bound<'_, PyAny>>,
        alias: Option<&Bound<'_, PyAny>>,
        tenant: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        let mask = convert::capabilities(capabilities, "capabilities")?;
        let max_cost = convert::optional_real(max_cost, "max_cost")?;
        let min_speed = convert::optional_real(min_speed, "min_speed")?;
        let context_length = convert::optional_count32(context_length, "context_length", 1)?;
        let exclude = convert::names(exclude_models, "exclude_models")?;
        let input_tokens = convert::optional_count32(input_tokens, "input_tokens", 0)?;
        let output_tokens = convert::optional_count32(output_tokens, "output_tokens", 0)?;
        let tags = convert::tags(tags, "tags")?;
        let session_id = convert::request_string(session_id, "session_id")?;
        let alias = convert::optional_label(alias, "alias")?;
        let constraints = Constraints::new(
            mask,
            max_cost,
            min_speed,
            context_length.map(i64::from),
            Vec::new(),
            input_tokens.map(i64::from),
            output_tokens.map(i64::from),
        )
        .map_err(to_py)?;
        Ok(Request {
            constraints,
            exclude,
            tags,
            alias,
            given_tokens: (input_tokens, output_tokens),
            session_id,
            tenant: convert::optional_label(tenant, "tenant")?,
        })
    }

    /// The constraints against `table` (under its lock): excluded names
    /// become slots (a logical model's name: every deployment's), required
    /// tags the table's bits, the alias its group, the session id its key in
    /// the table, the tenant its budgets. An unknown excluded model or alias
    /// is a `ValueError` naming the field.
    pub fn resolve(&self, table: &Table) -> PyResult<Constraints> {
        let mut constraints = self.constraints.clone();
        constraints.session = self.session_id.as_deref().map(|id| table.session_key(id));
        constraints.tenant = self.tenant.as_deref().and_then(|t| table.tenant_budgets(t));
        for name in &self.exclude {
            if !table.exclude(&mut constraints, name) {
                return Err(convert::invalid(
                    "exclude_models",
                    format!("no model named {name:?} is registered"),
                ));
            }
        }
        table.require_tags(&mut constraints, &self.tags);
        if let Some(alias) = &self.alias {
            if !table.restrict_to(&mut constraints, alias) {
                return Err(convert::invalid(
                    "alias",
                    format!("no routing alias or model named {alias:?}"),
                ));
            }
        }
        Ok(constraints)
    }
}

#[pymethods]
impl Request {
    #[new]
    #[pyo3(signature = (capabilities=None, max_cost=None, min_speed=None, context_length=None, exclude_models=None, *, input_tokens=None, output_tokens=None, tags=None, session_id=None, alias=None, tenant=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        capabilities: Option<&Bound<'_, PyAny>>,
        max_cost: Option<&Bound<'_, PyAny>>,
        min_speed: Option<&Bound<'_, PyAny>>,
        context_length: Option<&Bound<'_, PyAny>>,
        exclude_models: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        session_id: Option<&Bound<'_, PyAny>>,
        alias: Option<&Bound<'_, PyAny>>,
        tenant: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        Request::parse(
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
        )
    }

    /// Whose budgets apply, as given.
    #[getter]
    fn tenant(&self) -> Option<String> {
        self.tenant.clone()
    }

    #[getter]
    fn capabilities(&self) -> Vec<&'static str> {
        core::CAPABILITY_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.constraints.required_capabilities & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect()
    }

    #[getter]
    fn max_cost(&self) -> Option<f64> {
        self.constraints.max_cost
    }

    #[getter]
    fn min_speed(&self) -> Option<f64> {
        self.constraints.min_speed
    }

    #[getter]
    fn context_length(&self) -> Option<u32> {
        self.constraints.context_length
    }

    #[getter]
    fn exclude_models(&self) -> Vec<String> {
        self.exclude.clone()
    }

    /// Tags the model must all have.
    #[getter]
    fn tags(&self) -> Vec<String> {
        self.tags.clone()
    }

    /// The routing alias or logical model the model must belong to.
    #[getter]
    fn alias(&self) -> Option<String> {
        self.alias.clone()
    }

    /// Input tokens the request is priced for (the default when not given).
    #[getter]
    fn input_tokens(&self) -> u32 {
        self.constraints.input_tokens
    }

    /// Output tokens the request is priced for (the default when not given).
    #[getter]
    fn output_tokens(&self) -> u32 {
        self.constraints.output_tokens
    }

    #[getter]
    fn given_input_tokens(&self) -> Option<u32> {
        self.given_tokens.0
    }

    #[getter]
    fn given_output_tokens(&self) -> Option<u32> {
        self.given_tokens.1
    }

    #[getter]
    fn session_id(&self) -> Option<String> {
        self.session_id.clone()
    }
}

/// One call's outcome, converted and validated; reported to any number of
/// registries (`SelectionCore.record`/`report`).
#[pyclass(frozen, module = "orchestrator._core", from_py_object)]
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub inner: core::Outcome,
}

/// The one conversion of an outcome's fields, shared by `Outcome(...)` and
/// `SelectionCore.report_many`.
#[allow(clippy::too_many_arguments)]
pub fn outcome(
    success: &Bound<'_, PyAny>,
    latency: &Bound<'_, PyAny>,
    error_class: Option<&Bound<'_, PyAny>>,
    time_to_first_token: Option<&Bound<'_, PyAny>>,
    input_tokens: Option<&Bound<'_, PyAny>>,
    output_tokens: Option<&Bound<'_, PyAny>>,
    cost: Option<&Bound<'_, PyAny>>,
    quality: Option<&Bound<'_, PyAny>>,
    retry_after: Option<&Bound<'_, PyAny>>,
    provider_limits: core::ProviderLimits,
    fields: &OutcomeFields,
) -> PyResult<core::Outcome> {
    let error_class = match error_class {
        Some(v) if !v.is_none() => {
            core::error_class_index(&convert::string(v, fields.error_class)?).map_err(|_| {
                convert::invalid(
                    fields.error_class,
                    format!(
                        "{:?}; known: {}",
                        v.to_string(),
                        core::ERROR_CLASSES.join(", ")
                    ),
                )
            })?
        }
        _ => 0,
    };
    let tokens = |v: Option<&Bound<'_, PyAny>>, field: &str| match v {
        Some(v) if !v.is_none() => convert::count(v, field, 0),
        _ => Ok(0),
    };
    let raw = core::Outcome {
        success: convert::boolean(success, fields.success)?,
        error_class,
        latency_s: convert::real(latency, fields.latency)?,
        ttft_s: convert::optional_real(time_to_first_token, "time_to_first_token")?,
        input_tokens: tokens(input_tokens, fields.input_tokens)?,
        output_tokens: tokens(output_tokens, fields.output_tokens)?,
        cost_usd: convert::optional_real(cost, fields.cost)?,
        quality: convert::optional_real(quality, fields.quality)?,
        reward: None,
        retry_after_s: convert::optional_real(retry_after, "retry_after")?.unwrap_or(0.0),
        provider_limits,
    };
    raw.checked().map_err(|err| match err {
        core::CoreError::Invalid { field, value } => {
            convert::invalid(fields.python_name(field), value)
        }
        other => to_py(other),
    })
}

/// What a provider's rate-limit headers reported, converted by type.
pub fn provider_limits(
    remaining_requests: Option<&Bound<'_, PyAny>>,
    requests_reset: Option<&Bound<'_, PyAny>>,
    remaining_tokens: Option<&Bound<'_, PyAny>>,
    tokens_reset: Option<&Bound<'_, PyAny>>,
) -> PyResult<core::ProviderLimits> {
    let remaining = |v, field| {
        convert::optional_integer(v, field, 0, i128::from(u64::MAX)).map(|n| n.map(|n| n as u64))
    };
    Ok(core::ProviderLimits {
        remaining_requests: remaining(remaining_requests, "remaining_requests")?,
        requests_reset_s: convert::optional_real(requests_reset, "requests_reset")?,
        remaining_tokens: remaining(remaining_tokens, "remaining_tokens")?,
        tokens_reset_s: convert::optional_real(tokens_reset, "tokens_reset")?,
    })
}

/// The Python names of an outcome's fields at one entry point (singular
/// for `Outcome`, plural for the sequences of `report_many`).
pub struct OutcomeFields {
    pub success: &'static str,
    pub latency: &'static str,
    pub error_class: &'static str,
    pub input_tokens: &'static str,
    pub output_tokens: &'static str,
    pub cost: &'static str,
    pub quality: &'static str,
}

impl OutcomeFields {
    pub const ONE: OutcomeFields = OutcomeFields {
        success: "success",
        latency: "latency",
        error_class: "error_class",
        input_tokens: "input_tokens",
        output_tokens: "output_tokens",
        cost: "cost",
        quality: "quality",
    };
    pub const MANY: OutcomeFields = OutcomeFields {
        success: "successes",
        latency: "latencies",
        error_class: "error_classes",
        input_tokens: "input_tokens",
        output_tokens: "output_tokens",
        cost: "costs",
        quality: "qualities",
    };

    fn python_name(&self, core_field: &'static str) -> &'static str {
        match core_field {
            "latency" => self.latency,
            "cost" => self.cost,
            "quality" => self.quality,
            "error_class" => self.error_class,
            other => other,
        }
    }
}

#[pymethods]
impl Outcome {
    #[new]
    #[pyo3(signature = (success, latency, *, error_class=None, time_to_first_token=None, input_tokens=None, output_tokens=None, cost=None, quality=None, retry_after=None, remaining_requests=None, requests_reset=None, remaining_tokens=None, tokens_reset=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        success: &Bound<'_, PyAny>,
        latency: &Bound<'_, PyAny>,
        error_class: Option<&Bound<'_, PyAny>>,
        time_to_first_token: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        quality: Option<&Bound<'_, PyAny>>,
        retry_after: Option<&Bound<'_, PyAny>>,
        remaining_requests: Option<&Bound<'_, PyAny>>,
        requests_reset: Option<&Bound<'_, PyAny>>,
        remaining_tokens: Option<&Bound<'_, PyAny>>,
        tokens_reset: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Outcome> {
        let reported = provider_limits(
            remaining_requests,
            requests_reset,
            remaining_tokens,
            tokens_reset,
        )?;
        Ok(Outcome {
            inner: outcome(
                success,
                latency,
                error_class,
                time_to_first_token,
                input_tokens,
                output_tokens,
                cost,
                quality,
                retry_after,
                reported,
                &OutcomeFields::ONE,
            )?,
        })
    }

    #[getter]
    fn success(&self) -> bool {
        self.inner.success
    }

    #[getter]
    fn error_class(&self) -> &'static str {
        core::ERROR_CLASSES[usize::from(self.inner.error_class)]
    }

    #[getter]
    fn latency(&self) -> f64 {
        self.inner.latency_s
    }

    #[getter]
    fn retry_after(&self) -> f64 {
        self.inner.retry_after_s
    }
}

/// What a request tells the contextual router, converted before any lock:
/// the prompt's text (bounded by `MAX_ROUTED_PROMPT_BYTES`), the caller's
/// embedding and willingness to pay. Accepted by every selecting entry
/// point; a registry without the contextual strategy validates and ignores it.
#[derive(Debug, Clone, Default)]
pub struct RoutedInput {
    text: String,
    embedding: Option<Vec<f32>>,
    willingness_to_pay: Option<f64>,
}

impl RoutedInput {
    pub fn parse(
        prompt: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        willingness_to_pay: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<RoutedInput> {
        let text = match prompt.filter(|p| !p.is_none()) {
            Some(prompt) => convert::prompt_text(prompt, routing::MAX_ROUTED_PROMPT_BYTES)?,
            None => String::new(),
        };
        let willingness_to_pay = convert::optional_real(willingness_to_pay, "willingness_to_pay")?
            .map(routing::finite_willingness)
            .transpose()
            .map_err(to_py)?;
        Ok(RoutedInput {
            text,
            embedding: convert::embedding_values(embedding)?,
            willingness_to_pay,
        })
    }

    pub fn prompted(&self) -> routing::Prompted<'_> {
        routing::Prompted {
            text: &self.text,
            embedding: self.embedding.as_deref(),
            willingness_to_pay: self.willingness_to_pay,
        }
    }
}

/// Validate a request's `prompt`, `embedding` and `willingness_to_pay` by the
/// rules of every selecting entry point (for user-written selectors, which
/// do not route by prompt).
#[pyfunction]
#[pyo3(signature = (prompt=None, embedding=None, willingness_to_pay=None))]
pub fn check_routed_input(
    prompt: Option<&Bound<'_, PyAny>>,
    embedding: Option<&Bound<'_, PyAny>>,
    willingness_to_pay: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    RoutedInput::parse(prompt, embedding, willingness_to_pay).map(drop)
}
