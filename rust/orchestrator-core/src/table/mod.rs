//! The model table: every registered model as a slot in parallel arrays,
//! selection in one pass over them, and outcome reporting. Change
//! detection, shared state and the statistics matrix are in the submodules;
//! specs, outcomes and verdicts in their own modules of the crate.

mod affinity;
mod candidates;
mod change;
pub mod groups;
mod leases;
mod shared;
mod spend;
mod stats_matrix;
pub mod tags;

use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::breaker::{Breaker, BreakerConfig, BreakerState, Transition};
use crate::budgets::{BudgetPass, Budgets, Hold};
use crate::error::{non_negative, CoreError};
use crate::limits::{Limits, RateLimits, Reservation, WindowState};
pub use crate::outcome::{Delta, Outcome, SharedStats};
use crate::reward::RewardWeights;
use crate::rng::DrawKey;
use crate::sessions::{SessionConfig, SessionMap};
pub use crate::spec::{
    Constraints, ModelSpec, Rejection, DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS,
};
use crate::stats::{Observation, Observed, Snapshot};
use crate::strategy::{Strategy, StrategyConfig};
use crate::tickets::{Ticket, TicketStore};
pub use crate::verdict::{Explanation, ScoreParts, Selection, Verdict};
use crate::ERROR_AUTHENTICATION;
pub use affinity::SessionVerdict;
use groups::Groups;
use tags::TagIndex;

/// Mean reward assumed for a model with no reported outcome in its estimate.
const PRIOR_MEAN: f64 = 0.5;
/// Rescale the discounted statistics when the running weight exceeds this.
const RESCALE_AT: f64 = 1e100;
/// A discounted outcome count below this (relative to the newest outcome's
/// weight of 1) is forgotten when rescaling.
const FORGOTTEN: f64 = 1e-200;
/// The most selections one `select_many` call makes.
pub const MAX_SELECT_MANY: usize = 10_000;

/// The fields selection reads for every model, packed together so the
/// one-pass scan stays in cache.
#[derive(Debug, Clone, Copy, Default)]
struct Hot {
    capabilities: u32,
    context_length: u32,
    input_price: f64,
    output_price: f64,
    request_fee: f64,
    priced: bool,
    /// Observed output tokens per second, else declared; NaN when unknown.
    speed: f64,
    /// The model's tags, as bits of the table's [`TagIndex`].
    tags: u64,
}

impl Hot {
    fn of(spec: &ModelSpec, tags: u64) -> Self {
        Hot {
            tags,
            capabilities: spec.capabilities,
            context_length: spec.context_length,
            input_price: spec.input_price_per_million / 1e6,
            output_price: spec.output_price_per_million / 1e6,
            request_fee: spec.request_fee,
            priced: spec.priced,
            speed: spec.declared_speed.unwrap_or(f64::NAN),
        }
    }

    /// What a call of these token counts costs at the declared prices.
    fn price(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        if self.priced {
            input_tokens as f64 * self.input_price
                + output_tokens as f64 * self.output_price
                + self.request_fee
        } else {
            0.0
        }
    }

    #[inline]
    fn expected_cost(&self, input_tokens: u32, output_tokens: u32) -> Option<f64> {
        self.priced.then(|| {
            f64::from(input_tokens) * self.input_price
                + f64::from(output_tokens) * self.output_price
                + self.request_fee
        })
    }
}

/// What the scores of one pass over the table share.
struct Pass {
    inv_weight: f64,
    /// `sqrt(exploration_factor * ln N)`: UCB's bonus is this over `sqrt(n)`.
    ucb_scale: f64,
}

/// Every registered model's selection state, as arrays indexed by slot.
#[derive(Debug)]
pub struct Table {
    strategy: StrategyConfig,
    reward_weights: RewardWeights,
    breaker_config: BreakerConfig,
    pending_timeout_s: f64,

    active: Vec<bool>,
    generation: Vec<u32>,
    specs: Vec<ModelSpec>,
    hot: Vec<Hot>,
    pending: Vec<u32>,
    trials: Vec<u64>,
    /// Discounted outcome count, reward sum and squared-reward sum, all
    /// multiplied by `weight` (see `report`).
    disc_n: Vec<f64>,
    disc_sum: Vec<f64>,
    disc_sq: Vec<f64>,
    /// Fast moving average of each slot's reward and the outcomes it has
    /// seen, for change detection (see `detect_change`).
    recent_reward: Vec<(f64, u32)>,
    /// Other workers' statistics (effective count, reward sum, squared
    /// reward sum), set by the shared-state sync; zero when not shared.
    shared: Vec<SharedStats>,
    /// Outcomes reported here since the last `take_deltas`.
    deltas: Vec<Delta>,
    breakers: Vec<Breaker>,
    observed: Vec<Observed>,
    /// Core-clock time of each slot's latest outcome; NaN before the first.
    last_outcome_at: Vec<f64>,
    /// Each slot's rate-limit window (`rpm`, `tpm`, learned caps).
    limits: Limits,
    /// The tag names the slots' `Hot::tags` bits stand for.
    tags: TagIndex,
    /// The slot each session is bound to (see `affinity`).
    sessions: SessionMap,
    /// Logical models (their deployments' slots) and routing aliases.
    groups: Groups,
    /// Spend budgets and the ones covering each slot.
    budgets: Budgets,
    /// The highest prices of any active priced slot: what a request can
    /// cost at most, so a pass skips budgets with room for that.
    price_ceiling: Hot,

    by_name: FxHashMap<String, u32>,
    free_slots: Vec<u32>,
    tickets: TicketStore,
    weight: f64,
    total_disc_n: f64,
    total_shared_n: f64,
    total_pending: u64,
    /// Number of selections made: the counter Thompson draws are keyed by.
    selections: u64,
    clock_origin: Instant,
    clock_offset_s: f64,
    /// Whether the clock moves only by `advance_clock` (simulations).
    clock_virtual: bool,
    draws: DrawKey,
}

impl Default for Table {
    fn default() -> Self {
        Table::new(
            StrategyConfig::default(),
            RewardWeights::default(),
            BreakerConfig::default(),
        )
        .expect("defaults are valid")
    }
}

impl Table {
    pub fn new(
        strategy: StrategyConfig,
        reward_weights: RewardWeights,
        breaker_config: BreakerConfig,
    ) -> Result<Self, CoreError> {
        reward_weights.validate()?;
        breaker_config.validate()?;
        Ok(Table {
            strategy,
            reward_weights,
            breaker_config,
            pending_timeout_s: 600.0,
            active: Vec::new(),
            generation: Vec::new(),
            specs: Vec::new(),
            hot: Vec::new(),
            pending: Vec::new(),
            trials: Vec::new(),
            disc_n: Vec::new(),
            disc_sum: Vec::new(),
            disc_sq: Vec::new(),
            shared: Vec::new(),
            recent_reward: Vec::new(),
            deltas: Vec::new(),
            breakers: Vec::new(),
            observed: Vec::new(),
            last_outcome_at: Vec::new(),
            limits: Limits::default(),
            tags: TagIndex::default(),
            sessions: SessionMap::new(SessionConfig::default(), random_secret()),
            groups: Groups::default(),
            budgets: Budgets::new(0.0, spend::unix_now()),
            price_ceiling: Hot::default(),
            by_name: FxHashMap::default(),
            free_slots: Vec::new(),
            tickets: TicketStore::default(),
            weight: 1.0,
            total_disc_n: 0.0,
            total_shared_n: 0.0,
            total_pending: 0,
            selections: 0,
            clock_origin: Instant::now(),
            clock_offset_s: 0.0,
            clock_virtual: false,
            draws: DrawKey::new(0x5EED),
        })
    }

    // ----- configuration -------------------------------------------------

    pub fn strategy(&self) -> StrategyConfig {
        self.strategy
    }

    pub fn set_strategy(&mut self, strategy: StrategyConfig) {
        self.strategy = strategy;
    }

    pub fn reward_weights(&self) -> RewardWeights {
        self.reward_weights
    }

    pub fn set_reward_weights(&mut self, weights: RewardWeights) -> Result<(), CoreError> {
        weights.validate()?;
        self.reward_weights = weights;
        Ok(())
    }

    pub fn breaker_config(&self) -> BreakerConfig {
        self.breaker_config
    }

    pub fn set_breaker_config(&mut self, config: BreakerConfig) -> Result<(), CoreError> {
        config.validate()?;
        self.breaker_config = config;
        Ok(())
    }

    /// Seed the generator Thompson sampling draws from, for reproducible runs.
    /// The selection counter restarts, so the run from here on depends
    /// only on the seed and the calls that change state.
    pub fn seed(&mut self, seed: u64) {
        self.draws = DrawKey::new(seed);
        self.selections = 0;
    }

    /// Seconds after which an unreported selection stops counting as pending.
    pub fn set_pending_timeout(&mut self, seconds: f64) -> Result<(), CoreError> {
        non_negative("pending_timeout", seconds)?;
        if seconds == 0.0 {
            return Err(CoreError::invalid("pending_timeout", seconds));
        }
        self.pending_timeout_s = seconds;
        Ok(())
    }

    /// The core's monotonic clock, in seconds.
    pub fn now(&self) -> f64 {
        if self.clock_virtual {
            self.clock_offset_s
        } else {
            self.clock_origin.elapsed().as_secs_f64() + self.clock_offset_s
        }
    }

    /// Stop the clock at its current reading, rounded up to a whole second:
    /// from now on it moves only by `advance_clock`, so a seeded simulation
    /// gives the same numbers however long it takes in real time. The whole
    /// second makes the readings exact sums of the advances: started at a
    /// real reading such as 0.0123, advances of 1, 1, 1 and 57 s could add
    /// up to a hair under 60 s past it, and a window would end late.
    pub fn use_virtual_clock(&mut self) {
        if !self.clock_virtual {
            self.clock_offset_s = self.now().ceil();
            self.clock_virtual = true;
        }
    }

    /// Whether the clock moves only by `advance_clock`.
    pub fn is_virtual_clock(&self) -> bool {
        self.clock_virtual
    }

    /// Move the core's clock forward, for tests of cool-downs and expiry.
    pub fn advance_clock(&mut self, seconds: f64) -> Result<(), CoreError> {
        self.clock_offset_s += non_negative("seconds", seconds)?;
        Ok(())
    }

    // ----- registration --------------------------------------------------

    pub fn register(&mut self, spec: ModelSpec) -> Result<u32, CoreError> {
        spec.validate()?;
        if self.by_name.contains_key(&spec.name) {
            return Err(CoreError::DuplicateModel(spec.name));
        }
        self.check_no_alias_named(&spec)?;
        let tags = self.tags.acquire(&spec.tags)?;
        let limits = spec.limits;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let i = slot as usize;
                self.active[i] = true;
                self.hot[i] = Hot::of(&spec, tags);
                self.specs[i] = spec.clone();
                self.pending[i] = 0;
                self.trials[i] = 0;
                self.disc_n[i] = 0.0;
                self.disc_sum[i] = 0.0;
                self.disc_sq[i] = 0.0;
                self.shared[i] = SharedStats::default();
                self.recent_reward[i] = (0.0, 0);
                self.deltas[i] = Delta::default();
                self.breakers[i] = Breaker::default();
                self.observed[i] = Observed::default();
                self.last_outcome_at[i] = f64::NAN;
                slot
            }
            None => {
                self.active.push(true);
                self.generation.push(0);
                self.hot.push(Hot::of(&spec, tags));
                self.specs.push(spec.clone());
                self.pending.push(0);
                self.trials.push(0);
                self.disc_n.push(0.0);
                self.disc_sum.push(0.0);
                self.disc_sq.push(0.0);
                self.shared.push(SharedStats::default());
                self.recent_reward.push((0.0, 0));
                self.deltas.push(Delta::default());
                self.breakers.push(Breaker::default());
                self.observed.push(Observed::default());
                self.last_outcome_at.push(f64::NAN);
                (self.active.len() - 1) as u32
            }
        };
        self.limits.reset(slot as usize, limits);
        let held = spend::held(&self.tickets, &self.generation);
        self.budgets.attach(slot as usize, &spec, held);
        self.by_name.insert(spec.name, slot);
        self.join_groups(slot as usize);
        self.raise_price_ceiling(slot as usize);
        Ok(slot)
    }

    /// Replace what is declared about a registered model (its name stays).
    pub fn update_spec(&mut self, slot: u32, spec: ModelSpec) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        spec.validate()?;
        if spec.name != self.specs[i].name || spec.deployment != self.specs[i].deployment {
            return Err(CoreError::invalid("name", format!("{:?}", spec.name)));
        }
        let observed = self.observed[i].tokens_per_second;
        let tags = self.tags.acquire(&spec.tags)?;
        self.tags.release(self.hot[i].tags);
        self.hot[i] = Hot::of(&spec, tags);
        if let Some(speed) = observed {
            self.hot[i].speed = speed;
        }
        self.limits.configure(i, spec.limits);
        let held = spend::held(&self.tickets, &self.generation);
        self.budgets.attach(i, &spec, held);
        self.specs[i] = spec;
        self.refresh_price_ceiling();
        Ok(())
    }

    pub fn unregister(&mut self, name: &str) -> Result<u32, CoreError> {
        let slot = self
            .by_name
            .remove(name)
            .ok_or_else(|| CoreError::UnknownModel(name.to_owned()))?;
        let i = slot as usize;
        self.leave_groups(i);
        // Before the generation moves on: its outstanding holds are spent.
        let now = self.now();
        let held = spend::held(&self.tickets, &self.generation);
        self.budgets.detach(i, now, held);
        self.active[i] = false;
        self.tags.release(self.hot[i].tags);
        self.hot[i].tags = 0;
        self.generation[i] = self.generation[i].wrapping_add(1);
        self.total_disc_n -= self.disc_n[i];
        self.total_shared_n -= self.shared[i].n;
        self.shared[i] = SharedStats::default();
        self.total_pending -= u64::from(self.pending[i]);
        self.pending[i] = 0;
        self.limits.reset(i, RateLimits::default());
        self.sessions.remove_slot(slot);
        self.free_slots.push(slot);
        self.refresh_price_ceiling();
        Ok(slot)
    }

    pub fn slot_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Number of slots, active or not; arrays are this long.
    pub fn capacity(&self) -> usize {
        self.active.len()
    }

    pub fn is_active(&self, slot: u32) -> bool {
        self.active.get(slot as usize).copied().unwrap_or(false)
    }

    /// What a request of these token counts costs on `slot` at its declared
    /// prices (0 for an unpriced model).
    pub fn price(
        &self,
        slot: u32,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<f64, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.hot[i].price(input_tokens, output_tokens))
    }

    pub fn spec(&self, slot: u32) -> Result<&ModelSpec, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(&self.specs[i])
    }

    fn check_slot(&self, slot: u32) -> Result<usize, CoreError> {
        if self.is_active(slot) {
            Ok(slot as usize)
        } else {
            Err(CoreError::UnknownSlot(slot))
        }
    }

    /// Whether `slot` held a model that was unregistered (and is free now).
    fn is_vacated(&self, slot: u32) -> bool {
        (slot as usize) < self.active.len() && !self.is_active(slot)
    }

    /// Whether `ticket` was issued to a model that held `slot` before the
    /// one registered there now.
    fn of_an_earlier_model(&self, slot: u32, ticket: Option<u64>) -> bool {
        let Some(number) = ticket else { return false };
        self.tickets.get(number).is_some_and(|t| {
            t.slot == slot && self.generation.get(slot as usize) != Some(&t.generation)
        })
    }

    /// The slot a report names, with the ticket it holds if any: a ticket's
    /// model may have been unregistered since (racing the ticket's holder),
    /// and then the ticket is stale, not the slot unknown.
    pub(super) fn check_ticketed_slot(
        &self,
        slot: u32,
        ticket: Option<u64>,
    ) -> Result<usize, CoreError> {
        match ticket {
            Some(number) if self.is_vacated(slot) => Err(CoreError::StaleTicket(number)),
            _ => self.check_slot(slot),
        }
    }

    // ----- selection -----------------------------------------------------

    /// The first constraint slot `i` fails, or its expected cost.
    #[inline]
    fn check(&self, i: usize, c: &Constraints, now: f64) -> Result<Option<f64>, Rejection> {
        self.check_in(i, c, &self.budget_pass(c, now), now)
    }

    /// What the budget checks of a pass for `c` at `now` share.
    #[inline]
    fn budget_pass(&self, c: &Constraints, now: f64) -> BudgetPass {
        // Rounding is monotone, so no slot's expected cost exceeds this.
        let ceiling = self
            .price_ceiling
            .expected_cost(c.input_tokens, c.output_tokens)
            .unwrap_or(0.0);
        let ceiling = c.max_cost.map_or(ceiling, |max| ceiling.min(max));
        self.budgets.pass(c.tenant, now, ceiling)
    }

    /// Take slot `i`'s prices into the price ceiling.
    fn raise_price_ceiling(&mut self, i: usize) {
        let (hot, top) = (&self.hot[i], &mut self.price_ceiling);
        if hot.priced {
            top.priced = true;
            top.input_price = top.input_price.max(hot.input_price);
            top.output_price = top.output_price.max(hot.output_price);
            top.request_fee = top.request_fee.max(hot.request_fee);
        }
    }

    /// Recompute the price ceiling from the active slots (after one left or
    /// changed its prices).
    fn refresh_price_ceiling(&mut self) {
        self.price_ceiling = Hot::default();
        for i in 0..self.active.len() {
            if self.active[i] {
                self.raise_price_ceiling(i);
            }
        }
    }

    /// [`Self::check`] within a pass over many slots, which computes what
    /// their budget checks share once.
    #[inline(always)]
    fn check_in(
        &self,
        i: usize,
        c: &Constraints,
        budget_pass: &BudgetPass,
        now: f64,
    ) -> Result<Option<f64>, Rejection> {
        if let Some(group) = c.group {
            if !self.groups.contains(group, i) {
                return Err(Rejection::NotInGroup(group));
            }
        }
        let spec = &self.hot[i];
        let missing = c.required_capabilities & !spec.capabilities;
        if missing != 0 {
            return Err(Rejection::MissingCapabilities(missing));
        }
        let missing_tags = c.required_tags & !spec.tags;
        if missing_tags != 0 || !c.unknown_tags.is_empty() {
            return Err(Rejection::MissingTags(missing_tags));
        }
        if let Some(needed) = c.context_length {
            if spec.context_length == 0 {
                return Err(Rejection::ContextUnknown { needed });
            }
            if spec.context_length < needed {
                return Err(Rejection::ContextTooSmall {
                    needed,
                    has: spec.context_length,
                });
            }
        }
        if let Some(needed) = c.window_needed {
            if spec.context_length != 0 && spec.context_length < needed {
                return Err(Rejection::ContextTooSmall {
                    needed,
                    has: spec.context_length,
                });
            }
        }
        let cost = spec.expected_cost(c.input_tokens, c.output_tokens);
        if let Some(max) = c.max_cost {
            match cost {
                None => return Err(Rejection::Unpriced),
                Some(cost) if cost > max => return Err(Rejection::TooExpensive { cost, max }),
                Some(_) => {}
            }
        }
        if let Some(min) = c.min_speed {
            let speed = spec.speed;
            if speed.is_nan() {
                return Err(Rejection::SpeedUnknown);
            }
            if speed < min {
                return Err(Rejection::TooSlow { speed, min });
            }
        }
        if c.exclude.contains(&(i as u32)) {
            return Err(Rejection::Excluded);
        }
        // Before the breaker: a model whose window is full is never probed.
        self.limits.admits(i, c.reserved_tokens(), now)?;
        self.budgets.admits(i, budget_pass, cost)?;
        let breaker = &self.breakers[i];
        if !breaker.would_admit(now) {
            if breaker.quiet_in(now) > 0.0 {
                return Err(Rejection::RateLimited {
                    retry_in_s: breaker.quiet_in(now),
                });
            }
            return Err(Rejection::CircuitOpen {
                retry_in_s: breaker.retry_in(now),
            });
        }
        let half_open = breaker.state == BreakerState::HalfOpen
            || (breaker.state == BreakerState::Open && now >= breaker.open_until);
        if half_open && self.probe_in_flight(i, now) {
            return Err(Rejection::ProbeInFlight);
        }
        Ok(cost)
    }

    /// Whether ticket `number` is live for slot `i` at `now` (issued for the
    /// model now registered there, neither taken nor past its timeout).
    fn ticket_live(&self, i: usize, number: u64, now: f64) -> bool {
        self.tickets.get(number).is_some_and(|t| {
            t.slot as usize == i
                && t.generation == self.generation[i]
                && now - t.issued_at <= self.pending_timeout_s
        })
    }

    /// Whether a half-open probe call of slot `i` is in flight: one started
    /// and its ticket is still live.
    fn probe_in_flight(&self, i: usize, now: f64) -> bool {
        self.breakers[i]
            .probe
            .is_some_and(|number| self.ticket_live(i, number, now))
    }

    /// A call of `slot` under `ticket` starts now: a measured call took its
    /// held ticket, or a caller took a selection to call the provider
    /// itself. While the breaker is half-open and no probe is in flight, this
    /// call is the probe: other selections wait for its outcome (or for its
    /// ticket to be cancelled or to expire). A stale ticket starts nothing.
    pub fn start_call(&mut self, slot: u32, ticket: u64) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        if self.breakers[i].state != BreakerState::HalfOpen {
            return Ok(()); // the common case: nothing to probe, no clock read
        }
        let now = self.now();
        if self.ticket_live(i, ticket, now) && !self.probe_in_flight(i, now) {
            self.breakers[i].probe = Some(ticket);
        }
        Ok(())
    }

    /// Whether slot `i` still owes forced trials, its estimate and its
    /// exploration bonus: all that selection needs.
    #[inline(always)]
    fn rank(&self, i: usize, cost: Option<f64>, p: &Pass) -> (bool, f64, f64) {
        let s = &self.strategy;
        if s.strategy == Strategy::CostBased {
            return (false, cost.map_or(f64::MIN / 4.0, |c| -c), 0.0);
        }
        let pending = self.pending[i];
        let (n, sum, sq) = self.combined(i, p.inv_weight);
        let tried = self.trials[i] + self.shared[i].n as u64 + u64::from(pending);
        let n_eff = n + f64::from(pending);
        let forced = tried < u64::from(s.min_trials) || n_eff <= 0.0;
        let mean = if n > 0.0 { sum / n } else { PRIOR_MEAN };
        if forced {
            // A forced trial outranks every scored model: its bonus is
            // unbounded, so an explanation's top score is the model taken.
            return (true, mean, f64::INFINITY);
        }
        match s.strategy {
            Strategy::Thompson => {
                let var = if n > 0.0 {
                    (sq / n - mean * mean).max(0.0)
                } else {
                    0.25
                };
                let sd =
                    ((var + 1.0 / (n + 1.0)) / (n_eff + 1.0) * s.exploration_factor / 2.0).sqrt();
                (forced, mean, sd * self.draws.normal(self.selections, i))
            }
            Strategy::Ucb if n_eff > 0.0 => (forced, mean, p.ucb_scale / n_eff.sqrt()),
            _ => (forced, mean, 0.0),
        }
    }

    /// The full score breakdown of an eligible slot, for explanations.
    fn score(&self, i: usize, cost: Option<f64>, p: &Pass) -> ScoreParts {
        let (forced, estimate, bonus) = self.rank(i, cost, p);
        let (n, sum, sq) = self.combined(i, p.inv_weight);
        let (mean, var) = if n > 0.0 {
            let mean = sum / n;
            ((mean), (sq / n - mean * mean).max(0.0))
        } else {
            (PRIOR_MEAN, 0.25)
        };
        let half_width = self.strategy.z * ((var + 1e-12) / n.max(1.0)).sqrt();
        ScoreParts {
            estimate,
            exploration_bonus: bonus,
            score: estimate + bonus,
            ci_low: (mean - half_width).max(0.0),
            ci_high: (mean + half_width).min(1.0),
            trials: self.trials[i],
            pending: self.pending[i],
            forced,
            expected_cost: cost,
        }
    }

    fn disc_mean(&self, i: usize, inv_weight: f64) -> f64 {
        let (n, sum, _) = self.combined(i, inv_weight);
        if n > 0.0 {
            sum / n
        } else {
            PRIOR_MEAN
        }
    }

    /// Effective outcome count, reward sum and squared-reward sum of slot
    /// `i`: this worker's (discounted) plus other workers' shared ones.
    #[inline]
    fn combined(&self, i: usize, inv: f64) -> (f64, f64, f64) {
        let shared = &self.shared[i];
        (
            self.disc_n[i] * inv + shared.n,
            self.disc_sum[i] * inv + shared.reward_sum,
            self.disc_sq[i] * inv + shared.reward_sq_sum,
        )
    }

    /// What every slot's score in one pass shares, computed once.
    fn pass(&self) -> Pass {
        // `ln` of the total (discounted) number of outcomes plus pending requests.
        let ln_total =
            (self.total_disc_n / self.weight + self.total_shared_n + self.total_pending as f64)
                .max(1.0)
                .ln();
        Pass {
            inv_weight: 1.0 / self.weight,
            ucb_scale: (self.strategy.exploration_factor * ln_total).sqrt(),
        }
    }

    /// The model `select` would choose, without changing anything:
    /// `(slot, forced, fallback_open)`.
    /// A request's session keeps its bound slot when that passes `c`.
    pub fn pick(&self, c: &Constraints) -> Option<(usize, bool, bool)> {
        let now = self.now();
        match self.kept_slot(c, now) {
            Some(slot) => Some((slot, false, false)),
            None => self.pick_at(c, now),
        }
    }

    fn pick_at(&self, c: &Constraints, now: f64) -> Option<(usize, bool, bool)> {
        let pass = self.pass();
        let budget_pass = self.budget_pass(c, now);
        // Best forced trial: fewest tried. Best scored: highest (score, secondary).
        let mut forced: Option<(usize, u64)> = None;
        let mut best: Option<(usize, f64, f64)> = None;
        let mut soonest_open: Option<(usize, f64)> = None;
        for i in 0..self.active.len() {
            if !self.active[i] {
                continue;
            }
            let cost = match self.check_in(i, c, &budget_pass, now) {
                Ok(cost) => cost,
                Err(Rejection::CircuitOpen { .. }) => {
                    let until = self.breakers[i].open_until;
                    if soonest_open.is_none_or(|(_, t)| until < t) {
                        soonest_open = Some((i, until));
                    }
                    continue;
                }
                Err(_) => continue,
            };
            let (is_forced, estimate, bonus) = self.rank(i, cost, &pass);
            if is_forced {
                let tried = self.trials[i] + u64::from(self.pending[i]);
                if forced.is_none_or(|(_, t)| tried < t) {
                    forced = Some((i, tried));
                }
            } else if forced.is_none() {
                let score = estimate + bonus;
                let secondary = match self.strategy.strategy {
                    Strategy::CostBased => self.disc_mean(i, pass.inv_weight),
                    _ => -cost.unwrap_or(f64::MAX / 4.0),
                };
                let better = match best {
                    None => true,
                    Some((_, s, t)) => score > s || (score == s && secondary > t),
                };
                if better {
                    best = Some((i, score, secondary));
                }
            }
        }
        if let Some((i, _)) = forced {
            Some((i, true, false))
        } else if let Some((i, _, _)) = best {
            Some((i, false, false))
        } else {
            soonest_open.map(|(i, _)| (i, false, true))
        }
    }

    /// Pick a model for a request, marking it pending under a new ticket.
    /// `None` when no model is eligible. A request's session keeps its
    /// bound slot when that passes `c`; otherwise it is bound to the pick.
    pub fn select(&mut self, c: &Constraints) -> Option<Selection> {
        let now = self.begin_selection();
        let (slot, forced, fallback) = match self.kept_slot(c, now) {
            Some(slot) => (slot, false, false),
            None => self.pick_at(c, now)?,
        };
        let selection = self.claim_at(slot, now, c, forced, fallback);
        self.settle_session(c, slot, now);
        Some(selection)
    }

    /// Count a selection of `slot`, admit it through the breaker and issue
    /// its ticket, which reserves one request and `c`'s tokens of its rate
    /// limits and `c`'s expected cost of its budgets.
    fn claim_at(
        &mut self,
        slot: usize,
        now: f64,
        c: &Constraints,
        forced: bool,
        fallback: bool,
    ) -> Selection {
        self.selections += 1;
        let transition = if fallback {
            // Probe the soonest-recovering model early rather than fail.
            let b = &mut self.breakers[slot];
            b.state = BreakerState::HalfOpen;
            b.consecutive_successes = 0;
            Transition::HalfOpened
        } else {
            self.breakers[slot].admit(now).1
        };
        self.issue(slot, now, c, forced, fallback, transition)
    }

    /// Mark `slot` pending under a new ticket that holds its rate-limit
    /// reservation of one request and `c`'s tokens, and its budget hold of
    /// `c`'s expected cost.
    fn issue(
        &mut self,
        slot: usize,
        now: f64,
        c: &Constraints,
        forced: bool,
        fallback_open: bool,
        transition: Transition,
    ) -> Selection {
        let issued = Ticket {
            slot: slot as u32,
            generation: self.generation[slot],
            issued_at: now,
            reservation: self.limits.reserve(slot, c.reserved_tokens(), now),
            budget_hold: self.budgets.reserve(
                slot,
                c.tenant,
                self.hot[slot].expected_cost(c.input_tokens, c.output_tokens),
            ),
        };
        let (generation, pending, total, limits, budgets) = (
            &self.generation,
            &mut self.pending,
            &mut self.total_pending,
            &mut self.limits,
            &mut self.budgets,
        );
        let ticket = self.tickets.issue(issued, |number, old| {
            release_pending(generation, pending, total, limits, budgets, number, old);
        });
        self.pending[slot] += 1;
        self.total_pending += 1;
        Selection {
            slot: slot as u32,
            ticket,
            forced,
            fallback_open,
            transition,
        }
    }

    /// Select for `count` requests at once (at most [`MAX_SELECT_MANY`]);
    /// each selection sees the ones before it as pending. The caller calls
    /// the providers itself, so each selection's call starts at once (see
    /// [`Table::start_call`]: at most one probes a half-open model). Stops
    /// early if no model is eligible.
    pub fn select_many(
        &mut self,
        c: &Constraints,
        count: usize,
    ) -> Result<Vec<Selection>, CoreError> {
        if count > MAX_SELECT_MANY {
            return Err(CoreError::invalid(
                "n",
                format!("{count} (at most {MAX_SELECT_MANY} selections per call)"),
            ));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            match self.select(c) {
                Some(sel) => {
                    self.start_call(sel.slot, sel.ticket)?;
                    out.push(sel);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Every active model's verdict for a request, in slot order.
    pub fn explain(&self, c: &Constraints) -> Vec<Explanation> {
        let now = self.now();
        let pass = self.pass();
        let budget_pass = self.budget_pass(c, now);
        (0..self.active.len())
            .filter(|&i| self.active[i])
            .map(|i| Explanation {
                slot: i as u32,
                verdict: match self.check_in(i, c, &budget_pass, now) {
                    Ok(cost) => Verdict::Eligible(self.score(i, cost, &pass)),
                    Err(rejection) => Verdict::Rejected(rejection),
                },
            })
            .collect()
    }

    /// A rejection of request `c` as a sentence, naming what only the
    /// table knows (the names of the missing tags).
    pub fn describe(&self, rejection: &Rejection, c: &Constraints) -> String {
        match rejection {
            Rejection::MissingTags(mask) => {
                format!("missing {}", self.missing_tag_names(*mask, c).join(", "))
            }
            Rejection::NotInGroup(group) if self.group_is_alias(*group) => {
                format!("not in {}", self.group_name(*group))
            }
            Rejection::NotInGroup(group) => {
                format!("not a deployment of {}", self.group_name(*group))
            }
            other => other.describe(),
        }
    }

    /// Scores of every slot for a request; `-inf` where not eligible or inactive.
    pub fn scores(&self, c: &Constraints) -> Vec<f64> {
        let now = self.now();
        let pass = self.pass();
        let budget_pass = self.budget_pass(c, now);
        (0..self.active.len())
            .map(|i| {
                if !self.active[i] {
                    return f64::NEG_INFINITY;
                }
                match self.check_in(i, c, &budget_pass, now) {
                    Ok(cost) => self.score(i, cost, &pass).score,
                    Err(_) => f64::NEG_INFINITY,
                }
            })
            .collect()
    }

    // ----- reporting -----------------------------------------------------

    /// Take `slot`'s ticket (its rate-limit reservation and budget hold).
    pub(super) fn take_ticket(&mut self, slot: usize, ticket: u64) -> Result<Ticket, CoreError> {
        let generation = self.generation[slot];
        let taken = self
            .tickets
            .take_if(ticket, |t| {
                t.slot as usize == slot && t.generation == generation
            })
            .ok_or(CoreError::StaleTicket(ticket))?;
        self.pending[slot] -= 1;
        self.total_pending -= 1;
        Ok(taken)
    }

    /// Release a ticket without an outcome. Its rate-limit reservation and
    /// budget hold return unless the request was `sent` (a call cancelled
    /// after it started may have reached the provider, so it stays counted,
    /// and its expected cost is spent).
    pub fn cancel(&mut self, slot: u32, ticket: u64, sent: bool) -> Result<(), CoreError> {
        let i = self.check_ticketed_slot(slot, Some(ticket))?;
        let taken = self.take_ticket(i, ticket)?;
        if sent {
            let now = self.now();
            self.budgets.settle(ticket, i, taken.budget_hold, None, now);
        } else {
            self.limits.cancel(i, taken.reservation);
            self.budgets.release(ticket, i, taken.budget_hold);
        }
        Ok(())
    }

    /// Fold one outcome in. `ticket` is the one `select` issued, or `None`
    /// for a call that was not selected by this table. Validates everything
    /// before changing anything.
    pub fn report(
        &mut self,
        slot: u32,
        ticket: Option<u64>,
        outcome: &Outcome,
    ) -> Result<Transition, CoreError> {
        self.report_as(slot, ticket, outcome, false)
    }

    /// `report`; `measured`: the outcome is of a call the model made (so one
    /// without a ticket counts in its rate-limit window), not a manual report.
    fn report_as(
        &mut self,
        slot: u32,
        ticket: Option<u64>,
        outcome: &Outcome,
        measured: bool,
    ) -> Result<Transition, CoreError> {
        let i = self.check_ticketed_slot(slot, ticket)?;
        outcome.validate()?;
        let (reservation, hold) = match ticket {
            Some(t) => {
                let taken = self.take_ticket(i, t)?;
                (Reservation::Held(taken.reservation), (t, taken.budget_hold))
            }
            None if measured => (Reservation::Unselected, (0, Hold::default())),
            None => (Reservation::Uncounted, (0, Hold::default())),
        };
        Ok(self.apply(i, outcome, reservation, hold))
    }

    /// Fold in the outcome of a measured call. A call whose ticket expired
    /// (or was displaced) while it ran still counts, without the ticket; one
    /// whose model was unregistered while it ran counts nowhere, even when
    /// another model took its slot since.
    pub fn record_call(
        &mut self,
        slot: u32,
        ticket: Option<u64>,
        outcome: &Outcome,
    ) -> Result<Transition, CoreError> {
        if self.is_vacated(slot) || self.of_an_earlier_model(slot, ticket) {
            outcome.validate()?;
            return Ok(Transition::None);
        }
        match self.report_as(slot, ticket, outcome, true) {
            Err(CoreError::StaleTicket(_)) => self.report_as(slot, None, outcome, true),
            other => other,
        }
    }

    /// Report many outcomes; all are validated (slots, tickets, values)
    /// before any is applied.
    pub fn report_many(
        &mut self,
        items: &[(u32, Option<u64>, Outcome)],
    ) -> Result<Vec<Transition>, CoreError> {
        let mut seen = rustc_hash::FxHashSet::default();
        for (slot, ticket, outcome) in items {
            let i = self.check_ticketed_slot(*slot, *ticket)?;
            outcome.validate()?;
            if let Some(t) = ticket {
                let valid = matches!(self.tickets.get(*t),
                    Some(tk) if tk.slot as usize == i && tk.generation == self.generation[i]);
                if !valid || !seen.insert(*t) {
                    return Err(CoreError::StaleTicket(*t));
                }
            }
        }
        let mut transitions = Vec::with_capacity(items.len());
        for (slot, ticket, outcome) in items {
            let i = *slot as usize;
            let (reservation, hold) = match ticket {
                Some(t) => {
                    let taken = self.take_ticket(i, *t)?;
                    (
                        Reservation::Held(taken.reservation),
                        (*t, taken.budget_hold),
                    )
                }
                None => (Reservation::Uncounted, (0, Hold::default())),
            };
            transitions.push(self.apply(i, outcome, reservation, hold));
        }
        Ok(transitions)
    }

    /// Fold a validated outcome into slot `i`, settling its rate-limit
    /// reservation and its ticket's budget hold (`(ticket, hold)`) at its cost.
    fn apply(
        &mut self,
        i: usize,
        o: &Outcome,
        reservation: Reservation,
        (ticket, hold): (u64, Hold),
    ) -> Transition {
        let now = self.now();
        self.limits.settle(
            i,
            reservation,
            o.input_tokens.saturating_add(o.output_tokens),
            &o.provider_limits,
            self.pending[i],
            now,
        );
        let cost_usd = o
            .cost_usd
            .unwrap_or_else(|| self.hot[i].price(o.input_tokens, o.output_tokens));
        match reservation {
            Reservation::Held(_) => self.budgets.settle(ticket, i, hold, Some(cost_usd), now),
            Reservation::Unselected => self.budgets.spend_unselected(i, cost_usd, now),
            Reservation::Uncounted => {}
        }
        let reward = o.reward.unwrap_or_else(|| {
            self.reward_weights
                .reward(o.success, o.latency_s, cost_usd, o.quality)
        });
        // Discounting: every stored statistic is kept multiplied by `weight`,
        // which grows by 1/discount per outcome, so one multiplication here
        // decays every model's past at once.
        if self.strategy.discount < 1.0 {
            self.weight /= self.strategy.discount;
        }
        let w = self.weight;
        self.disc_n[i] += w;
        self.disc_sum[i] += reward * w;
        self.disc_sq[i] += reward * reward * w;
        self.total_disc_n += w;
        // A run of failures is the breaker's business (an outage); change
        // detection looks at how the model behaves when it answers.
        if o.success || self.breakers[i].consecutive_failures == 0 {
            self.detect_change(i, reward);
        }
        if self.weight > RESCALE_AT {
            self.rescale();
        }
        self.trials[i] += 1;
        self.last_outcome_at[i] = now;
        let error_class = o.counted_error_class();
        let d = &mut self.deltas[i];
        d.requests += 1;
        d.successes += u64::from(o.success);
        if !o.success {
            d.failures_by_class[usize::from(error_class)] += 1;
        }
        d.reward_sum += reward;
        d.reward_sq_sum += reward * reward;
        d.input_tokens = d.input_tokens.saturating_add(o.input_tokens);
        d.output_tokens = d.output_tokens.saturating_add(o.output_tokens);
        d.cost_usd += cost_usd;
        self.observed[i].record(&Observation {
            success: o.success,
            error_class,
            latency_s: o.latency_s,
            ttft_s: o.ttft_s,
            input_tokens: o.input_tokens,
            output_tokens: o.output_tokens,
            cost_usd,
            reward,
        });
        if let Some(speed) = self.observed[i].tokens_per_second {
            self.hot[i].speed = speed;
        }
        self.breakers[i].record(
            &self.breaker_config,
            now,
            o.success,
            error_class == ERROR_AUTHENTICATION,
            o.retry_after_s,
        )
    }

    fn expire_tickets(&mut self, now: f64) {
        let (generation, pending, total, limits, budgets) = (
            &self.generation,
            &mut self.pending,
            &mut self.total_pending,
            &mut self.limits,
            &mut self.budgets,
        );
        self.tickets
            .expire(now, self.pending_timeout_s, |number, t| {
                release_pending(generation, pending, total, limits, budgets, number, t);
            });
    }

    /// Expire tickets older than the pending timeout now, rather than at the
    /// next periodic sweep.
    pub fn sweep(&mut self) {
        let now = self.now();
        self.expire_tickets(now);
    }

    // ----- health ---------------------------------------------------------

    pub fn breaker(&self, slot: u32) -> Result<Breaker, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.breakers[i])
    }

    /// Record an active health check's verdict.
    pub fn record_health_check(
        &mut self,
        slot: u32,
        healthy: bool,
    ) -> Result<Transition, CoreError> {
        let i = self.check_slot(slot)?;
        let now = self.now();
        let cfg = self.breaker_config;
        Ok(self.breakers[i].force(&cfg, now, healthy))
    }

    // ----- reading --------------------------------------------------------

    pub fn snapshot(&self, slot: u32) -> Result<Snapshot, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.observed[i].snapshot())
    }

    /// Seconds since the slot's latest outcome, `None` before the first.
    pub fn idle_for(&self, slot: u32) -> Result<Option<f64>, CoreError> {
        let i = self.check_slot(slot)?;
        let last = self.last_outcome_at[i];
        Ok((!last.is_nan()).then(|| (self.now() - last).max(0.0)))
    }

    /// The slot's rate-limit window as of now.
    pub fn window(&self, slot: u32) -> Result<WindowState, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.limits.state(i, self.now()))
    }

    pub fn pending(&self, slot: u32) -> Result<u32, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.pending[i])
    }

    pub fn outstanding_tickets(&self) -> usize {
        self.tickets.len()
    }

    /// The number of the selection `select` makes next (Thompson draws are
    /// keyed by it).
    pub fn selections(&self) -> u64 {
        self.selections
    }
}

/// A random secret for session keys, different in every process (std's
/// hash-map keys are drawn from the operating system's randomness).
fn random_secret() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5E55_u64)
}

/// A ticket leaves without an outcome (expired or displaced): it stops
/// counting as pending and returns its rate-limit reservation and budget
/// hold, unless its model was unregistered since.
fn release_pending(
    generation: &[u32],
    pending: &mut [u32],
    total: &mut u64,
    limits: &mut Limits,
    budgets: &mut Budgets,
    number: u64,
    t: &Ticket,
) {
    let i = t.slot as usize;
    if generation[i] == t.generation && pending[i] > 0 {
        pending[i] -= 1;
        *total -= 1;
        limits.cancel(i, t.reservation);
        budgets.release(number, i, t.budget_hold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability_mask;

    pub(super) fn spec(name: &str, caps: &[&str], price: f64) -> ModelSpec {
        ModelSpec {
            name: name.to_owned(),
            provider: "test".to_owned(),
            capabilities: capability_mask(caps.iter().copied()).unwrap(),
            context_length: 8192,
            input_price_per_million: price,
            output_price_per_million: price,
            request_fee: 0.0,
            priced: true,
            declared_speed: Some(50.0),
            limits: RateLimits::default(),
            tags: Vec::new(),
            deployment: None,
        }
    }

    fn ok(latency: f64) -> Outcome {
        Outcome {
            success: true,
            latency_s: latency,
            ..Default::default()
        }
    }

    fn fail() -> Outcome {
        Outcome {
            success: false,
            error_class: 5,
            latency_s: 0.1,
            ..Default::default()
        }
    }

    fn any() -> Constraints {
        Constraints::new(0, None, None, None, vec![], None, None).unwrap()
    }

    #[test]
    fn constraints_filter_and_name_the_reason() {
        let mut t = Table::default();
        t.register(spec("cheap", &["text_generation"], 1.0))
            .unwrap();
        t.register(spec("coder", &["text_generation", "code_generation"], 30.0))
            .unwrap();
        let mask = capability_mask(["code_generation"]).unwrap();
        let c = Constraints::new(mask, None, None, None, vec![], None, None).unwrap();
        assert_eq!(t.select(&c).unwrap().slot, 1);
        let c = Constraints::new(mask, Some(0.001), None, None, vec![], None, None).unwrap();
        assert!(t.select(&c).is_none());
        let why = t.explain(&c);
        assert_eq!(
            why[0].verdict,
            Verdict::Rejected(Rejection::MissingCapabilities(mask))
        );
        match &why[1].verdict {
            Verdict::Rejected(r) => assert_eq!(r.constraint(), "max_cost"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn forced_trials_then_exploitation() {
        let mut t = Table::default();
        for name in ["a", "b", "c"] {
            t.register(spec(name, &["text_generation"], 1.0)).unwrap();
        }
        let c = any();
        for round in 0..300 {
            let sel = t.select(&c).unwrap();
            let outcome = if sel.slot == 1 || round % 2 == 0 {
                ok(0.2)
            } else {
                fail()
            };
            t.report(sel.slot, Some(sel.ticket), &outcome).unwrap();
        }
        for slot in 0..3 {
            assert!(t.snapshot(slot).unwrap().requests >= 5);
        }
        let best = t.snapshot(1).unwrap().requests;
        assert!(best > 150, "best model got {best} of 300");
        assert_eq!(t.outstanding_tickets(), 0);
    }

    #[test]
    fn a_ticket_is_reported_once() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        let sel = t.select(&any()).unwrap();
        assert_eq!(t.pending(0).unwrap(), 1);
        t.report(0, Some(sel.ticket), &ok(0.1)).unwrap();
        assert_eq!(
            t.report(0, Some(sel.ticket), &ok(0.1)),
            Err(CoreError::StaleTicket(sel.ticket))
        );
        assert_eq!(t.snapshot(0).unwrap().requests, 1);
        assert_eq!(t.pending(0).unwrap(), 0);
    }

    #[test]
    fn pending_spreads_concurrent_requests() {
        let mut t = Table::new(
            StrategyConfig::new(Strategy::Ucb, 2.0, 1, 0.95, 1.0).unwrap(),
            RewardWeights::default(),
            BreakerConfig::default(),
        )
        .unwrap();
        for name in ["a", "b", "c", "d"] {
            t.register(spec(name, &[], 1.0)).unwrap();
        }
        let sels = t.select_many(&any(), 4).unwrap();
        let mut slots: Vec<u32> = sels.iter().map(|s| s.slot).collect();
        slots.sort_unstable();
        assert_eq!(slots, vec![0, 1, 2, 3]);
    }

    #[test]
    fn bad_outcomes_change_nothing() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        let sel = t.select(&any()).unwrap();
        let bad = Outcome {
            latency_s: f64::NAN,
            ..ok(0.0)
        };
        let err = t.report(0, Some(sel.ticket), &bad).unwrap_err();
        assert!(err.to_string().contains("latency"));
        assert_eq!(t.pending(0).unwrap(), 1);
        assert_eq!(t.snapshot(0).unwrap().requests, 0);
        let batch = vec![
            (0, Some(sel.ticket), ok(0.1)),
            (0, Some(sel.ticket), ok(0.1)),
        ];
        assert!(t.report_many(&batch).is_err());
        assert_eq!(t.snapshot(0).unwrap().requests, 0);
    }

    #[test]
    fn open_breakers_are_skipped_and_the_soonest_is_probed_when_all_are_open() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        t.register(spec("b", &[], 1.0)).unwrap();
        for _ in 0..3 {
            t.report(0, None, &fail()).unwrap();
        }
        for _ in 0..20 {
            let sel = t.select(&any()).unwrap();
            assert_eq!(sel.slot, 1);
            t.report(sel.slot, Some(sel.ticket), &ok(0.1)).unwrap();
        }
        for _ in 0..3 {
            t.report(1, None, &fail()).unwrap();
        }
        let sel = t.select(&any()).unwrap();
        assert!(sel.fallback_open);
        assert_eq!(sel.slot, 0, "a opened first, so it recovers first");
    }

    #[test]
    fn no_model_is_probed_inside_its_retry_after_window() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        t.register(spec("b", &[], 1.0)).unwrap();
        let limited = Outcome {
            retry_after_s: 600.0,
            ..fail()
        };
        t.report(0, None, &limited).unwrap();
        t.report(1, None, &limited).unwrap();
        assert!(t.select(&any()).is_none());
        let rejections: Vec<_> = t
            .explain(&any())
            .into_iter()
            .map(|e| match e.verdict {
                Verdict::Rejected(r) => r,
                Verdict::Eligible(_) => panic!("a rate-limited model was eligible"),
            })
            .collect();
        assert!(rejections
            .iter()
            .all(|r| matches!(r, Rejection::RateLimited { retry_in_s } if *retry_in_s > 590.0)));
    }

    /// A table whose breaker never trips, for tests of learning alone.
    fn table_without_breaker(strategy: StrategyConfig) -> Table {
        Table::new(
            strategy,
            RewardWeights::default(),
            BreakerConfig {
                failure_threshold: 1000,
                error_rate_threshold: 1.0,
                error_rate_window: 1000,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn discounting_follows_drift() {
        let mut t =
            table_without_breaker(StrategyConfig::new(Strategy::Ucb, 0.5, 3, 0.95, 0.99).unwrap());
        t.register(spec("a", &[], 1.0)).unwrap();
        t.register(spec("b", &[], 1.0)).unwrap();
        let mut late_b = 0;
        for round in 0..4000 {
            let sel = t.select(&any()).unwrap();
            let a_good = round < 2000;
            let good = (sel.slot == 0) == a_good;
            let outcome = if good { ok(0.1) } else { fail() };
            t.report(sel.slot, Some(sel.ticket), &outcome).unwrap();
            if round >= 3000 && sel.slot == 1 {
                late_b += 1;
            }
        }
        assert!(late_b > 800, "discounted UCB moved to b: {late_b} of 1000");
    }

    #[test]
    fn unregister_frees_the_slot_and_stale_tickets_do_not_leak() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        let sel = t.select(&any()).unwrap();
        t.unregister("a").unwrap();
        assert_eq!(t.register(spec("b", &[], 1.0)).unwrap(), 0);
        assert_eq!(
            t.report(0, Some(sel.ticket), &ok(0.1)),
            Err(CoreError::StaleTicket(sel.ticket))
        );
        assert_eq!(t.pending(0).unwrap(), 0);
        assert!(t.register(spec("b", &[], 1.0)).is_err());
    }

    #[test]
    fn a_ticket_whose_model_left_is_stale_and_its_call_counts_nowhere() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        let tickets: Vec<u64> = (0..4).map(|_| t.select(&any()).unwrap().ticket).collect();
        t.register(spec("b", &[], 1.0)).unwrap();
        t.unregister("a").unwrap();
        let stale = CoreError::StaleTicket;
        assert_eq!(
            t.report(0, Some(tickets[0]), &ok(0.1)),
            Err(stale(tickets[0]))
        );
        assert_eq!(t.cancel(0, tickets[1], false), Err(stale(tickets[1])));
        assert_eq!(
            t.cancel_spent(0, tickets[2], 1, 1, None),
            Err(stale(tickets[2]))
        );
        assert_eq!(
            t.report_many(&[(0, Some(tickets[3]), ok(0.1))]),
            Err(CoreError::StaleTicket(tickets[3]))
        );
        // A measured call that was running when its model left is dropped,
        // with or without its ticket; its outcome is still checked.
        assert_eq!(
            t.record_call(0, Some(tickets[3]), &ok(0.1)),
            Ok(Transition::None)
        );
        assert_eq!(t.record_call(0, None, &ok(0.1)), Ok(Transition::None));
        assert!(matches!(
            t.record_call(0, None, &ok(f64::NAN)),
            Err(CoreError::Invalid { .. })
        ));
        assert_eq!(t.snapshot(1).unwrap().requests, 0);
        // Another model takes the slot: the old call still counts nowhere.
        assert_eq!(t.register(spec("c", &[], 1.0)).unwrap(), 0);
        assert_eq!(
            t.record_call(0, Some(tickets[0]), &ok(0.1)),
            Ok(Transition::None)
        );
        assert_eq!(t.snapshot(0).unwrap().requests, 0);
        t.record_call(0, None, &ok(0.1)).unwrap();
        assert_eq!(t.snapshot(0).unwrap().requests, 1);
        // A slot no model ever held is still unknown, ticket or not.
        assert_eq!(
            t.cancel(7, tickets[1], false),
            Err(CoreError::UnknownSlot(7))
        );
        assert_eq!(
            t.record_call(7, None, &ok(0.1)),
            Err(CoreError::UnknownSlot(7))
        );
    }

    #[test]
    fn deltas_are_taken_once_and_shared_stats_join_the_score() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        t.register(spec("b", &[], 1.0)).unwrap();
        for _ in 0..3 {
            t.report(0, None, &ok(0.1)).unwrap();
        }
        t.report(0, None, &fail()).unwrap();
        let deltas = t.take_deltas();
        assert_eq!(deltas.len(), 1);
        assert_eq!((deltas[0].1.requests, deltas[0].1.successes), (4, 3));
        assert!(t.take_deltas().is_empty(), "taken once");
        t.restore_deltas(&deltas);
        assert_eq!(t.take_deltas()[0].1.requests, 4);
        // Other workers tried b 100 times with a perfect record: no forced
        // trials are owed and its estimate is theirs.
        let shared = SharedStats {
            n: 100.0,
            reward_sum: 100.0,
            reward_sq_sum: 100.0,
        };
        t.set_shared(1, shared).unwrap();
        let why = t.explain(&any());
        match &why[1].verdict {
            Verdict::Eligible(p) => {
                assert!(!p.forced);
                assert!((p.estimate - 1.0).abs() < 1e-12);
            }
            other => panic!("unexpected {other:?}"),
        }
        let bad = SharedStats {
            n: 1.0,
            reward_sum: 5.0,
            reward_sq_sum: 5.0,
        };
        assert!(t.set_shared(1, bad).is_err());
        assert_eq!(t.shared(1).unwrap(), shared);
    }

    #[test]
    fn thompson_sampling_settles_on_the_best_model() {
        let mut t = table_without_breaker(
            StrategyConfig::new(Strategy::Thompson, 2.0, 3, 0.95, 1.0).unwrap(),
        );
        t.seed(7);
        for name in ["a", "b", "c"] {
            t.register(spec(name, &[], 1.0)).unwrap();
        }
        let mut late_b = 0;
        for round in 0..2000 {
            let sel = t.select(&any()).unwrap();
            let good = sel.slot == 1 || round % 3 == 0;
            let outcome = if good { ok(0.2) } else { fail() };
            t.report(sel.slot, Some(sel.ticket), &outcome).unwrap();
            if round >= 1000 && sel.slot == 1 {
                late_b += 1;
            }
        }
        assert!(late_b > 900, "thompson settled on b: {late_b} of 1000");
    }

    #[test]
    fn a_model_that_changes_is_relearned_and_a_steady_one_is_not() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        t.register(spec("b", &[], 1.0)).unwrap();
        let good = Outcome {
            reward: Some(0.9),
            ..ok(0.1)
        };
        let worse = Outcome {
            reward: Some(0.5),
            ..ok(0.1)
        };
        for round in 0..1000 {
            t.report(0, None, &good).unwrap();
            // b fails now and then, alone: no change.
            let b = if round % 50 == 0 { fail() } else { good };
            t.report(1, None, &b).unwrap();
        }
        let n = |t: &Table, i: usize| t.disc_n[i] / t.weight;
        assert_eq!(n(&t, 1), 1000.0, "isolated failures are not a change");
        for _ in 0..60 {
            t.report(0, None, &worse).unwrap();
        }
        assert!(n(&t, 0) < 100.0, "a's history was cut: {}", n(&t, 0));
        let mean = t.disc_sum[0] / t.disc_n[0];
        assert!(
            (mean - 0.5).abs() < 0.1,
            "a's estimate moved to its new level: {mean}"
        );
    }

    #[test]
    fn a_virtual_clock_moves_only_when_advanced() {
        let mut t = Table::default();
        t.advance_clock(5.0).unwrap();
        t.use_virtual_clock();
        let start = t.now();
        assert!(start >= 5.0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(t.now(), start);
        t.advance_clock(2.5).unwrap();
        assert_eq!(t.now(), start + 2.5);
    }

    #[test]
    fn a_virtual_clock_starts_on_a_whole_second_so_a_window_ends_when_told() {
        for before in [0.0123, 0.4999, 3.7, 1e-9] {
            let mut t = Table::default();
            t.advance_clock(before).unwrap();
            t.use_virtual_clock();
            let start = t.now();
            assert!(
                start >= before && start.fract() == 0.0,
                "{before} -> {start}"
            );
            t.register(limited("a", Some(3), None)).unwrap();
            for _ in 0..3 {
                t.select(&any()).unwrap();
                t.advance_clock(1.0).unwrap();
            }
            t.advance_clock(57.0).unwrap(); // the first selection leaves the window now
            assert!(t.select(&any()).is_some(), "started after {before} s");
        }
    }

    fn limited(name: &str, rpm: Option<u32>, tpm: Option<u64>) -> ModelSpec {
        ModelSpec {
            limits: RateLimits { rpm, tpm },
            ..spec(name, &[], 1.0)
        }
    }

    #[test]
    fn a_full_window_is_not_eligible_not_even_as_a_probe() {
        let mut t = Table::default();
        t.use_virtual_clock();
        t.register(limited("a", Some(2), None)).unwrap();
        let first = t.select(&any()).unwrap();
        t.select(&any()).unwrap();
        t.advance_clock(10.0).unwrap();
        assert!(t.select(&any()).is_none());
        let why = t.explain(&any());
        assert_eq!(
            why[0].verdict,
            Verdict::Rejected(Rejection::RequestLimit {
                used: 2,
                limit: 2,
                retry_in_s: 50.0,
                window_s: 60.0,
            })
        );
        // An open breaker does not make a full window a fallback probe.
        for _ in 0..3 {
            t.report(0, None, &fail()).unwrap();
        }
        assert!(t.select(&any()).is_none());
        // A cancelled selection returns its request.
        t.cancel(0, first.ticket, false).unwrap();
        assert_eq!(
            t.window(0).unwrap().requests,
            1,
            "manual reports are not calls"
        );
        let measured = t.record_call(0, None, &ok(0.1));
        assert!(measured.is_ok());
        assert_eq!(
            t.window(0).unwrap().requests,
            2,
            "a measured call not selected here"
        );
    }

    #[test]
    fn reported_tokens_replace_the_estimate() {
        let mut t = Table::default();
        t.use_virtual_clock();
        t.register(limited("a", None, Some(1000))).unwrap();
        let c = Constraints::new(0, None, None, None, vec![], Some(300), Some(200)).unwrap();
        let sel = t.select(&c).unwrap();
        assert_eq!(t.window(0).unwrap().tokens, 500);
        let used = Outcome {
            input_tokens: 300,
            output_tokens: 600,
            ..ok(0.1)
        };
        t.report(0, Some(sel.ticket), &used).unwrap();
        assert_eq!(t.window(0).unwrap().tokens, 900);
        assert!(matches!(
            t.explain(&c)[0].verdict,
            Verdict::Rejected(Rejection::TokenLimit { used: 900, .. })
        ));
        // An expired ticket returns its reservation.
        let small = Constraints::new(0, None, None, None, vec![], Some(50), Some(50)).unwrap();
        t.select(&small).unwrap();
        t.set_pending_timeout(1.0).unwrap();
        t.advance_clock(2.0).unwrap();
        t.sweep();
        assert_eq!(t.window(0).unwrap().tokens, 900);
    }

    #[test]
    fn expired_tickets_stop_counting_as_pending() {
        let mut t = Table::default();
        t.register(spec("a", &[], 1.0)).unwrap();
        t.select(&any()).unwrap();
        t.advance_clock(601.0).unwrap();
        t.sweep();
        assert_eq!(t.pending(0).unwrap(), 0);
    }
}
