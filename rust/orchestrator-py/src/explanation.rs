//! A request's explanation as the core saw it, taken in one snapshot.

use orchestrator_core::routing::{CandidateScore, RoutedExplanation};
use orchestrator_core::{SessionVerdict, Table, Verdict};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Normal quantile of the 95% interval shown around a predicted quality.
const CONTEXTUAL_Z: f64 = 1.959_963_984_540_054;

/// One model's verdict, with the object registered for it and, under the
/// contextual strategy, the router's view of it.
struct Row {
    model: Py<PyAny>,
    name: String,
    verdict: Verdict,
    /// The rejection as a sentence (named by the table: tag names are its).
    reason: Option<String>,
    routed: Option<CandidateScore>,
}

/// Every model's verdict for a request and the one selection would choose,
/// from one consistent snapshot of the table. Explaining draws nothing and
/// issues no ticket; for Thompson sampling the scores are the draws the next
/// selection will use, so `chosen` is the top score.
#[pyclass(frozen, module = "orchestrator._core")]
pub struct Explanation {
    rows: Vec<Row>,
    chosen: Option<usize>,
    all_breakers_open: bool,
    /// What the request's session means: `session: kept on m (bound 12 s ago)`.
    session: Option<String>,
    /// The row of the model the request's session keeps.
    kept: Option<usize>,
}

impl Explanation {
    /// Take the snapshot (under the core's lock: only Rust values and
    /// reference counts are touched).
    pub fn of(
        py: Python<'_>,
        table: &Table,
        models: &[Option<Py<PyAny>>],
        constraints: &orchestrator_core::Constraints,
    ) -> Explanation {
        let pick = table.pick(constraints);
        Self::rows_of(
            py,
            table,
            models,
            constraints,
            pick.map(|(slot, _, _)| slot as u32),
            pick.is_some_and(|(_, _, fallback)| fallback),
            Vec::new(),
        )
    }

    /// The snapshot of a contextual selection: the table's verdicts, and
    /// for each eligible model the router's prediction and value.
    pub fn of_routed(
        py: Python<'_>,
        table: &Table,
        models: &[Option<Py<PyAny>>],
        constraints: &orchestrator_core::Constraints,
        routed: &RoutedExplanation,
    ) -> Explanation {
        Self::rows_of(
            py,
            table,
            models,
            constraints,
            routed.chosen,
            routed.fallback_open,
            routed.candidates.clone(),
        )
    }

    fn rows_of(
        py: Python<'_>,
        table: &Table,
        models: &[Option<Py<PyAny>>],
        constraints: &orchestrator_core::Constraints,
        pick: Option<u32>,
        all_breakers_open: bool,
        mut routed: Vec<CandidateScore>,
    ) -> Explanation {
        let verdict = table.session_verdict(constraints, table.now());
        let session = verdict.as_ref().map(|v| table.describe_session(v));
        let kept_slot = match verdict {
            Some(SessionVerdict::Kept { slot, .. }) => Some(slot),
            _ => None,
        };
        let mut kept = None;
        let mut chosen = None;
        let mut rows = Vec::new();
        for e in table.explain(constraints) {
            let Some(Some(model)) = models.get(e.slot as usize) else {
                continue;
            };
            if pick == Some(e.slot) {
                chosen = Some(rows.len());
            }
            if kept_slot == Some(e.slot) {
                kept = Some(rows.len());
            }
            let name = table
                .spec(e.slot)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let routed = routed
                .iter()
                .position(|c| c.slot == e.slot)
                .map(|at| routed.swap_remove(at));
            let reason = match &e.verdict {
                Verdict::Rejected(rejection) => Some(table.describe(rejection, constraints)),
                Verdict::Eligible(_) => None,
            };
            rows.push(Row {
                model: model.clone_ref(py),
                name,
                verdict: e.verdict,
                reason,
                routed,
            });
        }
        Explanation {
            rows,
            chosen,
            all_breakers_open,
            session,
            kept,
        }
    }

    /// Seconds until the first model rejected for its health (an open
    /// circuit or a provider's `Retry-After`) may be tried again, when no
    /// model is chosen; `None` otherwise.
    fn soonest_retry(&self) -> Option<f64> {
        if self.chosen.is_some() {
            return None;
        }
        self.rows
            .iter()
            .filter_map(|r| match &r.verdict {
                Verdict::Rejected(reason) => reason.retry_in(),
                Verdict::Eligible(_) => None,
            })
            .reduce(f64::min)
    }
}

#[pymethods]
impl Explanation {
    /// The model selection would choose, or `None`.
    #[getter]
    fn chosen(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.chosen.map(|i| self.rows[i].model.clone_ref(py))
    }

    /// Every eligible model's breaker is open; the soonest to recover is chosen.
    #[getter]
    fn all_breakers_open(&self) -> bool {
        self.all_breakers_open
    }

    /// What the request's session means for the pick (`None`: it has none):
    /// kept on its model, moved from it (and why), or new.
    #[getter]
    fn session(&self) -> Option<String> {
        self.session.clone()
    }

    /// The model the request's session keeps (it passes every check), or `None`.
    #[getter]
    fn kept_model(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.kept.map(|i| self.rows[i].model.clone_ref(py))
    }

    /// When no model is chosen: seconds until the first model rejected for
    /// its health may be tried again (`None` if none was).
    #[getter]
    fn retry_in(&self) -> Option<f64> {
        self.soonest_retry()
    }

    /// Every model's verdict as dicts: `model`, `name`, `eligible`, and the
    /// score parts or the rejecting `constraint` and `reason`.
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in &self.rows {
            let row = PyDict::new(py);
            row.set_item("model", r.model.bind(py))?;
            row.set_item("name", &r.name)?;
            match &r.verdict {
                Verdict::Eligible(p) => {
                    row.set_item("eligible", true)?;
                    match &r.routed {
                        Some(c) => {
                            let q = c.prediction.quality;
                            let spread = CONTEXTUAL_Z * c.prediction.uncertainty;
                            row.set_item("estimate", q)?;
                            row.set_item("exploration_bonus", c.rule_quality - q)?;
                            row.set_item("score", c.value)?;
                            row.set_item("ci_low", (q - spread).max(0.0))?;
                            row.set_item("ci_high", (q + spread).min(1.0))?;
                            row.set_item("uncertainty", c.prediction.uncertainty)?;
                            row.set_item("observations", c.observations)?;
                            let top: Vec<(String, f64)> = c
                                .top_features
                                .iter()
                                .map(|f| (f.feature.clone(), f.logit))
                                .collect();
                            row.set_item("top_features", top)?;
                        }
                        None => {
                            row.set_item("estimate", p.estimate)?;
                            row.set_item("exploration_bonus", p.exploration_bonus)?;
                            row.set_item("score", p.score)?;
                            row.set_item("ci_low", p.ci_low)?;
                            row.set_item("ci_high", p.ci_high)?;
                        }
                    }
                    row.set_item("trials", p.trials)?;
                    row.set_item("pending", p.pending)?;
                    row.set_item("forced", p.forced)?;
                    row.set_item("expected_cost", p.expected_cost)?;
                }
                Verdict::Rejected(reason) => {
                    row.set_item("eligible", false)?;
                    row.set_item("constraint", reason.constraint())?;
                    row.set_item("reason", &r.reason)?;
                }
            }
            out.append(row)?;
        }
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.rows.len()
    }
}
