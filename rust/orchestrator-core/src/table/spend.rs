//! The table's spend budgets (see [`crate::budgets`]): declaring them,
//! reading them, and settling a call stopped after it was sent.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::budgets::{BudgetSpec, BudgetState, Held};
use crate::error::CoreError;
use crate::outcome::Outcome;

use crate::tickets::TicketStore;

use super::Table;

/// The latest UTC time (Unix seconds) [`Table::set_wall_clock`] accepts,
/// 9999-11-30 23:59:59: every period then ends by 9999-12-01, a date the
/// bindings can still read (Python's `datetime` ends in the year 9999).
pub const MAX_WALL_CLOCK_S: f64 = 253_399_622_399.0;

/// Every outstanding ticket's budget hold, of the models registered now
/// (a ticket of an unregistered model had its hold spent).
pub(super) fn held<'a>(
    tickets: &'a TicketStore,
    generation: &'a [u32],
) -> impl Iterator<Item = Held> + 'a {
    tickets
        .iter()
        .filter(move |(_, t)| t.budget_hold.held && t.generation == generation[t.slot as usize])
        .map(|(number, t)| (number, t.slot as usize, t.budget_hold))
}

/// The wall clock as Unix seconds (0 before 1970, which no host reports).
pub(super) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Table {
    /// Add a spend budget; it covers the registered models its scope names
    /// and any registered later.
    pub fn add_budget(&mut self, spec: BudgetSpec) -> Result<(), CoreError> {
        let now = self.now();
        let slots: Vec<_> = (0..self.active.len())
            .map(|i| self.active[i].then(|| &self.specs[i]))
            .collect();
        let held = held(&self.tickets, &self.generation);
        self.budgets.add(spec, &slots, now, held).map(drop)
    }

    pub fn remove_budget(&mut self, name: &str) -> Result<(), CoreError> {
        let held = held(&self.tickets, &self.generation);
        self.budgets.remove(name, held)
    }

    /// Set (`None`: clear) how much of a budget this table may spend in its
    /// current period, at most its limit, in nano-USD: the hook for sharing a
    /// budget across workers (each worker's lease).
    pub fn set_budget_allowance(
        &mut self,
        name: &str,
        allowance_nanos: Option<u64>,
    ) -> Result<(), CoreError> {
        self.budgets.set_allowance(name, allowance_nanos)
    }

    /// Every budget as of now, in the order added (reusing removed places).
    pub fn budgets(&self) -> Vec<BudgetState> {
        self.budgets.states(self.now())
    }

    pub fn budget(&self, name: &str) -> Result<BudgetState, CoreError> {
        self.budgets.state(name, self.now())
    }

    /// The index of a tenant's budgets for [`crate::Constraints::tenant`]
    /// (`None`: the tenant has no budget, so none applies).
    pub fn tenant_budgets(&self, tenant: &str) -> Option<u32> {
        self.budgets.tenant(tenant)
    }

    /// Budget holds outstanding (one per unreported selection a budget
    /// covers; O(outstanding tickets), for tests and diagnostics).
    pub fn budget_holds(&self) -> usize {
        held(&self.tickets, &self.generation).count()
    }

    /// The UTC time (Unix seconds) budgets' periods follow, now.
    pub fn unix_time(&self) -> f64 {
        self.budgets.unix(self.now())
    }

    /// Set the UTC time budgets' calendar periods follow (tests, or a host
    /// whose clock was corrected): `unix_s` is now, from 1970 to
    /// [`MAX_WALL_CLOCK_S`] (a time beyond it gave periods ending past what a
    /// calendar date reads, and every `budgets()` failed).
    pub fn set_wall_clock(&mut self, unix_s: f64) -> Result<(), CoreError> {
        if !(0.0..=MAX_WALL_CLOCK_S).contains(&unix_s) {
            return Err(CoreError::invalid(
                "unix_time",
                format!("{unix_s} (Unix seconds from 0 to {MAX_WALL_CLOCK_S}: 1970 to 9999-11-30)"),
            ));
        }
        let now = self.now();
        self.budgets.set_wall_clock(now, unix_s);
        Ok(())
    }

    /// Release a ticket whose call was sent and then stopped without an
    /// outcome (a stream closed early): its request stays counted in the
    /// rate limit, and its budgets are charged what it used, `cost_usd` or
    /// else the model's price of these token counts.
    pub fn cancel_spent(
        &mut self,
        slot: u32,
        ticket: u64,
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: Option<f64>,
    ) -> Result<(), CoreError> {
        let i = self.check_ticketed_slot(slot, Some(ticket))?;
        // The usage is checked by an outcome's rules.
        Outcome {
            input_tokens,
            output_tokens,
            cost_usd,
            ..Outcome::default()
        }
        .validate()?;
        let taken = self.take_ticket(i, ticket)?;
        let spent = cost_usd.unwrap_or_else(|| self.hot[i].price(input_tokens, output_tokens));
        let now = self.now();
        self.budgets
            .settle(ticket, i, taken.budget_hold, Some(spent), now);
        Ok(())
    }
}
