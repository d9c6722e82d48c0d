//! `orchestrator._core.ContextualRouter`: the prompt-aware router of
//! `orchestrator_core::contextual`, converted to and from Python types.

use std::collections::HashMap;
use std::time::Instant;

use orchestrator_core::contextual::{Exploration, Router, RouterConfig};
use orchestrator_core::error::non_negative;
use orchestrator_core::features::{Features, FeaturizerConfig, FEATURIZER_VERSION};
use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule};

use crate::convert::{self, embedding_values, prompt_text, text};
use crate::errors::to_py;

/// `name → USD` from a mapping, each cost a real number (not a bool or string).
pub fn cost_map(costs: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Vec<(String, f64)>> {
    let Some(costs) = costs.filter(|c| !c.is_none()) else {
        return Ok(Vec::new());
    };
    let costs = costs.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!("{field} must be a dict of model name to USD"))
    })?;
    costs
        .iter()
        .map(|(name, cost)| Ok((text(&name, field)?, convert::real(&cost, field)?)))
        .collect()
}

/// `value` converted by `convert`, or `default` when it is absent or `None`.
fn or_default<T>(
    value: Option<&Bound<'_, PyAny>>,
    default: T,
    convert: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<T> {
    match value {
        Some(v) if !v.is_none() => convert(v),
        _ => Ok(default),
    }
}

/// A small integer setting (`hash_bits`, `word_ngrams`, `char_ngrams`).
fn small(value: &Bound<'_, PyAny>, field: &str) -> PyResult<u8> {
    convert::integer(value, field, 0, i128::from(u8::MAX)).map(|n| n as u8)
}

/// A router's hyper-parameters from the options `get` finds by name (the
/// keyword arguments of `ContextualRouter`), each converted by type and
/// range-checked by the core; absent options take the core's defaults.
fn config_of<'py>(get: impl Fn(&str) -> Option<Bound<'py, PyAny>>) -> PyResult<RouterConfig> {
    let defaults = RouterConfig::default();
    let exploration = or_default(get("exploration").as_ref(), "thompson".to_owned(), |v| {
        text(v, "exploration")
    })?;
    let config = RouterConfig {
        featurizer: FeaturizerConfig {
            hash_bits: or_default(
                get("hash_bits").as_ref(),
                defaults.featurizer.hash_bits,
                |v| small(v, "hash_bits"),
            )?,
            word_ngrams: or_default(
                get("word_ngrams").as_ref(),
                defaults.featurizer.word_ngrams,
                |v| small(v, "word_ngrams"),
            )?,
            char_ngrams: or_default(
                get("char_ngrams").as_ref(),
                defaults.featurizer.char_ngrams,
                |v| small(v, "char_ngrams"),
            )?,
            embedding_dim: or_default(
                get("embedding_dim").as_ref(),
                defaults.featurizer.embedding_dim,
                |v| convert::count32(v, "embedding_dim", 0),
            )?,
        },
        prior_precision: or_default(
            get("prior_precision").as_ref(),
            defaults.prior_precision,
            |v| convert::real(v, "prior_precision"),
        )?,
        exploration: parse_exploration(
            &exploration,
            or_default(get("exploration_weight").as_ref(), 1.0, |v| {
                // Checked whatever the rule: a NaN weight is refused, not ignored.
                non_negative(
                    "exploration_weight",
                    convert::real(v, "exploration_weight")?,
                )
                .map_err(to_py)
            })?,
        )?,
        epochs: or_default(get("epochs").as_ref(), defaults.epochs, |v| {
            convert::count32(v, "epochs", 0)
        })?,
        learning_rate: or_default(get("learning_rate").as_ref(), defaults.learning_rate, |v| {
            convert::real(v, "learning_rate")
        })?,
        feedback_ttl_s: or_default(
            get("feedback_ttl_s").as_ref(),
            defaults.feedback_ttl_s,
            |v| convert::real(v, "feedback_ttl_s"),
        )?,
        max_pending: or_default(
            get("max_pending").as_ref(),
            defaults.max_pending as u32,
            |v| convert::count32(v, "max_pending", 0),
        )? as usize,
        seed: or_default(get("seed").as_ref(), defaults.seed, |v| {
            convert::count(v, "seed", 0)
        })?,
    };
    Ok(config)
}

/// Option names `config_of` reads.
const OPTION_NAMES: [&str; 12] = [
    "hash_bits",
    "word_ngrams",
    "char_ngrams",
    "embedding_dim",
    "prior_precision",
    "exploration",
    "exploration_weight",
    "epochs",
    "learning_rate",
    "feedback_ttl_s",
    "max_pending",
    "seed",
];

/// A router's hyper-parameters from keyword options (`ContextualSelector`'s),
/// refusing names it does not know.
pub fn router_config<'py>(options: Option<&Bound<'py, PyDict>>) -> PyResult<RouterConfig> {
    if let Some(options) = options {
        for key in options.keys() {
            let key = convert::string(&key, "option")?;
            if !OPTION_NAMES.contains(&key.as_str()) {
                return Err(PyTypeError::new_err(format!(
                    "invalid option: {key:?}; known: {}",
                    OPTION_NAMES.join(", ")
                )));
            }
        }
    }
    config_of(|name| options.and_then(|o| o.get_item(name).ok().flatten()))
}

/// `name → one quality per prompt` from a dict, every value a real number.
pub fn quality_columns(qualities: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Vec<f64>)>> {
    let qualities = qualities.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(
            "invalid qualities: a dict of model name to a list of qualities is required",
        )
    })?;
    qualities
        .iter()
        .map(|(name, values)| {
            Ok((
                text(&name, "qualities")?,
                convert::each(&values, "qualities", convert::real)?,
            ))
        })
        .collect()
}

fn parse_exploration(name: &str, weight: f64) -> PyResult<Exploration> {
    match name {
        "greedy" => Ok(Exploration::Greedy),
        "thompson" => Ok(Exploration::Thompson),
        "ucb" => Ok(Exploration::Ucb(weight)),
        other => Err(PyValueError::new_err(format!(
            "invalid exploration: {other:?}; choose \"thompson\", \"ucb\" or \"greedy\""
        ))),
    }
}

/// `SharedRouter` shares weights by their flat index, which the model list
/// fixes: a standalone router keeps its models while it shares (the
/// registry shares by model name and may change them).
fn check_fixed(router: &Router) -> PyResult<()> {
    if router.is_sharing() {
        return Err(convert::invalid(
            "models",
            "cannot change while the router shares its state (SharedRouter)",
        ));
    }
    Ok(())
}

/// Features an explanation lists per model unless the caller asks for another number.
const DEFAULT_TOP_FEATURES: usize = 5;

/// One model's explanation: name, quality, uncertainty, cost, observations, top features.
type ExplanationRow = (String, f64, f64, Option<f64>, u64, Vec<(String, f64)>);

/// Prompt-aware router: per-model Bayesian logistic quality predictions over
/// hashed prompt features; decisions maximise quality − cost / willingness_to_pay.
#[pyclass(frozen, module = "orchestrator._core")]
pub struct ContextualRouter {
    inner: Mutex<Router>,
    started: Instant,
}

impl ContextualRouter {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn wrap(router: Router) -> Self {
        ContextualRouter {
            inner: Mutex::new(router),
            started: Instant::now(),
        }
    }

    /// Model names from a Python sequence, read before any lock is taken
    /// (iterating caller objects may run Python code).
    fn names(names: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
        convert::each(names, field, text)
    }
}

#[pymethods]
impl ContextualRouter {
    #[new]
    #[pyo3(signature = (
        models, *, costs=None, hash_bits=None, word_ngrams=None, char_ngrams=None,
        embedding_dim=None, prior_precision=None, exploration=None, exploration_weight=None,
        epochs=None, learning_rate=None, feedback_ttl_s=None, max_pending=None, seed=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        models: &Bound<'py, PyAny>,
        costs: Option<&Bound<'py, PyAny>>,
        hash_bits: Option<&Bound<'py, PyAny>>,
        word_ngrams: Option<&Bound<'py, PyAny>>,
        char_ngrams: Option<&Bound<'py, PyAny>>,
        embedding_dim: Option<&Bound<'py, PyAny>>,
        prior_precision: Option<&Bound<'py, PyAny>>,
        exploration: Option<&Bound<'py, PyAny>>,
        exploration_weight: Option<&Bound<'py, PyAny>>,
        epochs: Option<&Bound<'py, PyAny>>,
        learning_rate: Option<&Bound<'py, PyAny>>,
        feedback_ttl_s: Option<&Bound<'py, PyAny>>,
        max_pending: Option<&Bound<'py, PyAny>>,
        seed: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let models = Self::names(models, "models")?;
        let option = |name: &str| match name {
            "hash_bits" => hash_bits,
            "word_ngrams" => word_ngrams,
            "char_ngrams" => char_ngrams,
            "embedding_dim" => embedding_dim,
            "prior_precision" => prior_precision,
            "exploration" => exploration,
            "exploration_weight" => exploration_weight,
            "epochs" => epochs,
            "learning_rate" => learning_rate,
            "feedback_ttl_s" => feedback_ttl_s,
            "max_pending" => max_pending,
            "seed" => seed,
            _ => None,
        };
        let config = config_of(|name| option(name).cloned())?;
        let costs: HashMap<String, f64> = cost_map(costs, "costs")?.into_iter().collect();
        if let Some(unknown) = costs.keys().find(|name| !models.contains(name)) {
            return Err(PyKeyError::new_err(format!(
                "costs names {unknown:?}, which is not one of the models"
            )));
        }
        let entries: Vec<(&str, Option<f64>)> = models
            .iter()
            .map(|name| (name.as_str(), costs.get(name).copied()))
            .collect();
        Ok(Self::wrap(
            Router::with_models(config, &entries).map_err(to_py)?,
        ))
    }

    /// Model names, in index order.
    #[getter]
    fn models(&self) -> Vec<String> {
        self.inner.lock().model_names().to_vec()
    }

    /// Decisions waiting for delayed feedback.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.lock().pending()
    }

    /// Length of the feature vector (hashed block, structure signals, embedding).
    #[getter]
    fn dim(&self) -> u32 {
        self.inner.lock().featurizer().dim()
    }

    #[pyo3(signature = (name, cost=None))]
    fn add_model(&self, name: &Bound<'_, PyAny>, cost: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let name = text(name, "name")?;
        let cost = convert::optional_real(cost, "cost")?;
        let mut router = self.inner.lock();
        check_fixed(&router)?;
        router.add_model(&name, cost).map_err(to_py)?;
        Ok(())
    }

    fn remove_model(&self, name: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = text(name, "name")?;
        let mut router = self.inner.lock();
        check_fixed(&router)?;
        router.remove_model(&name).map_err(to_py)
    }

    fn set_cost(&self, name: &Bound<'_, PyAny>, cost: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = text(name, "name")?;
        let cost = convert::real(cost, "cost")?;
        let mut router = self.inner.lock();
        let model = router.model_index(&name).map_err(to_py)?;
        router.set_cost(model, cost).map_err(to_py)
    }

    /// Sparse features of a prompt: (indices, values); indices may repeat.
    #[pyo3(signature = (prompt, embedding=None))]
    fn featurize(
        &self,
        prompt: &Bound<'_, PyAny>,
        embedding: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Vec<u32>, Vec<f32>)> {
        let text = prompt_text(prompt, usize::MAX)?;
        let embedding = embedding_values(embedding)?;
        let featurizer = *self.inner.lock().featurizer();
        let mut out = Features::new();
        featurizer
            .featurize(&text, embedding.as_deref(), &mut out)
            .map_err(to_py)?;
        Ok((out.indices, out.values))
    }

    /// Per model (index order): (expected quality, uncertainty).
    #[pyo3(signature = (prompt, embedding=None))]
    fn predict(
        &self,
        prompt: &Bound<'_, PyAny>,
        embedding: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<(f64, f64)>> {
        let text = prompt_text(prompt, usize::MAX)?;
        let embedding = embedding_values(embedding)?;
        let predictions = self
            .inner
            .lock()
            .predict(&text, embedding.as_deref())
            .map_err(to_py)?;
        Ok(predictions
            .iter()
            .map(|p| (p.quality, p.uncertainty))
            .collect())
    }

    /// Choose a model: (name, request_id or None, quality used).
    #[pyo3(signature = (prompt, willingness_to_pay, *, eligible=None, costs=None, embedding=None, record=true))]
    fn decide(
        &self,
        prompt: &Bound<'_, PyAny>,
        willingness_to_pay: &Bound<'_, PyAny>,
        eligible: Option<&Bound<'_, PyAny>>,
        costs: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        record: bool,
    ) -> PyResult<(String, Option<u64>, f64)> {
        let text = prompt_text(prompt, usize::MAX)?;
        let willingness_to_pay = convert::real(willingness_to_pay, "willingness_to_pay")?;
        let costs = convert::optional_each(costs, "costs", convert::real)?;
        let embedding = embedding_values(embedding)?;
        let eligible = eligible
            .map(|names| Self::names(names, "eligible"))
            .transpose()?;
        let now = self.now();
        let mut router = self.inner.lock();
        let eligible = eligible
            .map(|names| {
                names
                    .iter()
                    .map(|name| router.model_index(name))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(to_py)?;
        let decision = router
            .decide(
                &text,
                embedding.as_deref(),
                eligible.as_deref(),
                costs.as_deref(),
                willingness_to_pay,
                record,
                now,
            )
            .map_err(to_py)?;
        Ok((
            router.model_names()[decision.model].clone(),
            decision.request_id,
            decision.score_quality,
        ))
    }

    /// Learn that `model` reached `quality` on this prompt.
    #[pyo3(signature = (prompt, model, quality, embedding=None))]
    fn learn(
        &self,
        prompt: &Bound<'_, PyAny>,
        model: &Bound<'_, PyAny>,
        quality: &Bound<'_, PyAny>,
        embedding: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let text = prompt_text(prompt, usize::MAX)?;
        let model = self::text(model, "model")?;
        let quality = convert::real(quality, "quality")?;
        let embedding = embedding_values(embedding)?;
        let mut router = self.inner.lock();
        let index = router.model_index(&model).map_err(to_py)?;
        router
            .learn(&text, embedding.as_deref(), index, quality)
            .map_err(to_py)
    }

    /// Delayed feedback for a recorded decision; returns the model it was about.
    fn report(
        &self,
        request_id: &Bound<'_, PyAny>,
        quality: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        let request_id = convert::count(request_id, "request_id", 0)?;
        let quality = convert::real(quality, "quality")?;
        let now = self.now();
        let mut router = self.inner.lock();
        let model = router.report(request_id, quality, now).map_err(to_py)?;
        Ok(router.model_names()[model].clone())
    }

    /// Fit from an evaluation table: `qualities` maps model name to one quality per prompt.
    #[pyo3(signature = (prompts, qualities, costs=None))]
    fn calibrate(
        &self,
        prompts: &Bound<'_, PyAny>,
        qualities: &Bound<'_, PyAny>,
        costs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let prompts = convert::each(prompts, "prompts", text)?;
        let qualities = quality_columns(qualities)?;
        let costs = cost_map(costs, "costs")?;
        let mut router = self.inner.lock();
        let mut columns = Vec::with_capacity(qualities.len());
        for (name, values) in qualities {
            columns.push((router.model_index(&name).map_err(to_py)?, values));
        }
        let mut prices = Vec::new();
        for (name, cost) in costs {
            prices.push((router.model_index(&name).map_err(to_py)?, cost));
        }
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        router.calibrate(&texts, &columns, &prices).map_err(to_py)
    }

    /// Per model: (name, quality, uncertainty, expected cost, observations, top features).
    #[pyo3(signature = (prompt, embedding=None, top=None))]
    fn explain(
        &self,
        prompt: &Bound<'_, PyAny>,
        embedding: Option<&Bound<'_, PyAny>>,
        top: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<ExplanationRow>> {
        let text = prompt_text(prompt, usize::MAX)?;
        let top = or_default(top, DEFAULT_TOP_FEATURES, |v| {
            convert::integer(v, "top", 0, i128::from(u32::MAX)).map(|n| n as usize)
        })?;
        let embedding = embedding_values(embedding)?;
        let mut router = self.inner.lock();
        let explanations = router
            .explain(&text, embedding.as_deref(), top)
            .map_err(to_py)?;
        Ok(router
            .model_names()
            .iter()
            .zip(explanations)
            .map(|(name, e)| {
                (
                    name.clone(),
                    e.prediction.quality,
                    e.prediction.uncertainty,
                    e.expected_cost,
                    e.observations,
                    e.top_features
                        .into_iter()
                        .map(|f| (f.feature, f.logit))
                        .collect(),
                )
            })
            .collect())
    }

    /// Start recording changes for sharing across workers (the current state
    /// is the starting state every worker must share).
    fn start_sharing(&self) {
        self.inner.lock().start_sharing();
    }

    /// Changes since the last call: (weight index, Δ precision, Δ precision × mean).
    fn take_changes(&self) -> PyResult<Vec<(u64, f64, f64)>> {
        self.inner.lock().take_changes().map_err(to_py)
    }

    /// Apply the shared sums of every worker's changes.
    fn apply_shared(&self, sums: Vec<(u64, f64, f64)>) -> PyResult<()> {
        self.inner.lock().apply_shared(&sums).map_err(to_py)
    }

    /// The learned state as bytes (format documented in `contextual/persist.rs`).
    fn save<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.lock().save())
    }

    /// A router from `save()` bytes, with the hyper-parameters of `settings`
    /// (any router, e.g. one with no models); the featurizer's come from the state.
    #[staticmethod]
    fn load(state: &[u8], settings: &ContextualRouter) -> PyResult<Self> {
        let config = *settings.inner.lock().config();
        Ok(Self::wrap(Router::load(state, config).map_err(to_py)?))
    }
}

/// Register the router class and its constants on `orchestrator._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ContextualRouter>()?;
    m.add("FEATURIZER_VERSION", FEATURIZER_VERSION)?;
    m.add(
        "DEFAULT_WILLINGNESS_TO_PAY",
        orchestrator_core::contextual::DEFAULT_WILLINGNESS_TO_PAY,
    )?;
    m.add(
        "MIN_WILLINGNESS_TO_PAY",
        orchestrator_core::contextual::MIN_WILLINGNESS_TO_PAY,
    )?;
    m.add(
        "STRUCTURE_FEATURES",
        orchestrator_core::features::STRUCTURE_NAMES.to_vec(),
    )?;
    Ok(())
}
