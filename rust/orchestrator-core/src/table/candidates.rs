//! Selection in two steps, for a caller that chooses among the eligible
//! models itself (the contextual router, `crate::routing`): a filter-only
//! pass over the table, then claiming the chosen slot. Filtering (constraints,
//! breaker, half-open probes) and claiming (ticket, pending, breaker
//! admission) are exactly those of [`Table::select`].

use crate::error::CoreError;
use crate::spec::{Constraints, Rejection};
use crate::verdict::Selection;

use super::Table;

impl Table {
    /// Start a selection: expire tickets past the pending timeout and
    /// sessions past their TTL, and refresh the rate-limit windows when due;
    /// returns the core clock's reading for the rest of the selection.
    pub fn begin_selection(&mut self) -> f64 {
        let now = self.now();
        self.expire_tickets(now);
        self.sessions.expire(now);
        self.limits.sweep_due(now);
        self.budgets.roll_due(now);
        now
    }

    /// Every slot that passes request `c` at `now`, with its expected cost
    /// (`None`: unpriced), into `out` (cleared first), in slot order. When
    /// none passes but some are rejected only by an open breaker, `out`
    /// holds the one that recovers soonest (the probe [`Table::select`]
    /// would send) and the result is `true`.
    pub fn candidates(&self, c: &Constraints, now: f64, out: &mut Vec<(u32, Option<f64>)>) -> bool {
        out.clear();
        let mut soonest_open: Option<(usize, f64)> = None;
        let budget_pass = self.budget_pass(c, now);
        for i in 0..self.active.len() {
            if !self.active[i] {
                continue;
            }
            match self.check_in(i, c, &budget_pass, now) {
                Ok(cost) => out.push((i as u32, cost)),
                Err(Rejection::CircuitOpen { .. }) => {
                    let until = self.breakers[i].open_until;
                    if soonest_open.is_none_or(|(_, t)| until < t) {
                        soonest_open = Some((i, until));
                    }
                }
                Err(_) => {}
            }
        }
        match soonest_open {
            Some((i, _)) if out.is_empty() => {
                let cost = self.hot[i].expected_cost(c.input_tokens, c.output_tokens);
                out.push((i as u32, cost));
                true
            }
            _ => false,
        }
    }

    /// Claim `slot` for one request, as [`Table::select`] does for its pick:
    /// count the selection, admit it through the breaker (`fallback_open`:
    /// the probe of a model whose breaker is open half-opens it), issue a
    /// ticket that reserves one request and `c`'s tokens of its rate limits
    /// and `c`'s expected cost of its budgets, and mark it pending.
    pub fn claim(
        &mut self,
        slot: u32,
        c: &Constraints,
        now: f64,
        fallback_open: bool,
    ) -> Result<Selection, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.claim_at(i, now, c, false, fallback_open))
    }
}
