//! Spend budgets: USD per calendar period for a model, a provider, a tag or
//! a tenant, enforced before selection like the rate limits.
//!
//! **Money** is integer nano-USD ([`NANOS_PER_USD`]): a cost is rounded to
//! the nearest nano-dollar once, when it enters a budget, and every sum after
//! that is exact integer arithmetic (no float accumulates).
//!
//! **Periods** are calendar periods in UTC: a minute budget resets at every
//! whole minute, an hour budget on the hour, a day budget at 00:00 UTC and a
//! month budget at 00:00 UTC on the 1st. A budget is an accounting cap ("what
//! did we spend today"), read the way invoices and dashboards count, and a
//! calendar period has one reset time to show and costs O(1) memory. Across a
//! boundary up to twice a minute/hour limit can be spent in a short stretch;
//! smoothing bursts is `rpm`/`tpm`'s job. The UTC time is the wall clock
//! read when the table was created, advanced by the core's monotonic clock,
//! so a wall-clock step after start moves no boundary
//! ([`Budgets::set_wall_clock`] re-reads it).
//!
//! **Checking** is a few array reads per slot: each slot keeps the indices of
//! the budgets whose scope covers it (model, provider, tag), a request's
//! tenant resolves to its budgets' indices once per request, and a budget
//! admits a request when `spent + reserved + expected ≤ capacity` (the
//! capacity is the limit, or a smaller allowance set from outside, for
//! leases across workers). A spent budget refuses every request, free ones
//! included.
//!
//! **Reservations**: a selection reserves the request's expected cost (the
//! model's price of the request's token estimate, the one `max_cost` uses)
//! in every budget that covers it, under a hold its ticket carries. The
//! outcome's cost replaces it; a ticket cancelled unsent, expired or served
//! from the cache returns it; a call stopped after it was sent spends what it
//! used (or, unknown, the reservation). A call the model made without a
//! selection counts when it reports. A hold remembers which budgets it went
//! to, so adding or removing budgets while calls run keeps every sum exact.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::{label, CoreError};
use crate::spec::{ModelSpec, Rejection};
use crate::table::tags::check_tag;

/// Nano-USD per USD: the unit of every budget sum.
pub const NANOS_PER_USD: u64 = 1_000_000_000;
/// The largest budget limit, in USD (the largest outcome cost).
pub const MAX_LIMIT_USD: f64 = crate::outcome::MAX_COST_USD;
/// The most budgets one table holds.
pub const MAX_BUDGETS: usize = 1024;
/// A selection pass skips every slot's budget check when all the model,
/// provider and tag budgets have room for its costliest request; it looks
/// at them only while there are at most this many.
const ALL_FIT_MAX_BUDGETS: usize = 16;
/// A request refused by budgets is worth retrying (`retry_in`) only when the
/// period resets within this many seconds (a minute budget); later resets
/// are not waited for.
pub const MAX_BUDGET_RETRY_IN_S: f64 = 60.0;

/// A cost in USD as nano-USD, rounded to the nearest with halves away from
/// zero, like `f64::round` (saturating; 0 for a negative amount or NaN).
/// Written out because `f64::round` is a libm call on baseline x86-64, and
/// this runs for every model a selection checks against a budget.
#[inline]
pub fn nanos(usd: f64) -> u64 {
    let scaled = usd * NANOS_PER_USD as f64;
    if scaled.is_nan() || scaled <= 0.0 {
        return 0;
    }
    let whole = scaled as u64;
    whole.saturating_add(u64::from(scaled - whole as f64 >= 0.5))
}

/// A budget's calendar period (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Minute,
    Hour,
    Day,
    Month,
}

/// Period names, in order.
pub const PERIOD_NAMES: [&str; 4] = ["minute", "hour", "day", "month"];

impl Period {
    pub fn from_name(name: &str) -> Result<Self, CoreError> {
        match name {
            "minute" => Ok(Period::Minute),
            "hour" => Ok(Period::Hour),
            "day" => Ok(Period::Day),
            "month" => Ok(Period::Month),
            other => Err(CoreError::invalid(
                "period",
                format!("{other:?} (one of {})", PERIOD_NAMES.join(", ")),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        PERIOD_NAMES[self as usize]
    }

    /// The end (Unix seconds, UTC) of the period that contains `unix_s`.
    pub fn end_after(self, unix_s: f64) -> f64 {
        let fixed = |len: f64| ((unix_s / len).floor() + 1.0) * len;
        match self {
            Period::Minute => fixed(60.0),
            Period::Hour => fixed(3600.0),
            Period::Day => fixed(86_400.0),
            Period::Month => {
                let (y, m, _) = civil_from_days((unix_s / 86_400.0).floor() as i64);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) as f64 * 86_400.0
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01: `(year, month, day)`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// What a budget covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every slot serving this model name.
    Model(String),
    Provider(String),
    Tag(String),
    /// Requests made with this `tenant`, on any model.
    Tenant(String),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Model(_) => "model",
            Scope::Provider(_) => "provider",
            Scope::Tag(_) => "tag",
            Scope::Tenant(_) => "tenant",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Scope::Model(v) | Scope::Provider(v) | Scope::Tag(v) | Scope::Tenant(v) => v,
        }
    }

    /// Whether this scope covers a model (tenant scopes cover requests). A
    /// model scope names one registered model (`gpt-4o@azure-eu`) or a
    /// logical model, covering every deployment of it (`gpt-4o`).
    fn covers(&self, spec: &ModelSpec) -> bool {
        match self {
            Scope::Model(name) => *name == spec.name || name == spec.model_name(),
            Scope::Provider(provider) => *provider == spec.provider,
            Scope::Tag(tag) => spec.tags.contains(tag),
            Scope::Tenant(_) => false,
        }
    }
}

/// A budget as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSpec {
    pub name: String,
    pub scope: Scope,
    pub limit_usd: f64,
    pub period: Period,
}

impl BudgetSpec {
    pub fn new(name: &str, scope: Scope, limit_usd: f64, period: Period) -> Self {
        BudgetSpec {
            name: name.to_owned(),
            scope,
            limit_usd,
            period,
        }
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        label("name", &self.name)?;
        label(self.scope.kind(), self.scope.value())?;
        if let Scope::Tag(tag) = &self.scope {
            check_tag(tag).map_err(|err| match err {
                CoreError::Invalid { value, .. } => CoreError::Invalid {
                    field: "tag",
                    value,
                },
                other => other,
            })?;
        }
        // Kept in nano-USD: a limit that rounds to 0 would refuse everything.
        if !(self.limit_usd.is_finite()
            && nanos(self.limit_usd) >= 1
            && self.limit_usd <= MAX_LIMIT_USD)
        {
            return Err(CoreError::invalid(
                "limit_usd",
                format!(
                    "{} (a finite number of USD, at least one nano-dollar once rounded, \
                     at most {MAX_LIMIT_USD:e})",
                    self.limit_usd
                ),
            ));
        }
        Ok(())
    }
}

/// What the budget checks of one selection pass share, computed once for
/// the pass: its Unix time, and the room left in the request's tenant's
/// budgets (the tightest of them), which cover every slot alike.
#[derive(Debug, Clone, Copy)]
pub struct BudgetPass {
    unix: f64,
    tenant: Option<u32>,
    /// Every budget that can cover a slot of this pass has room for the
    /// costliest request the pass can admit: no slot needs checking.
    all_fit: bool,
    /// A request fits its tenant's budgets iff its cost is below this;
    /// `None` when no budget covers the tenant.
    tenant_room: Option<u64>,
}

/// One budget's running figures (nano-USD), read by every check.
#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    /// `min(limit, allowance)`: what the check compares against.
    capacity: u64,
    spent: u64,
    reserved: u64,
    /// End of the current period, in Unix seconds.
    period_end: f64,
}

impl Meter {
    /// Whether a request of `needed` fits at Unix time `unix` (a spent
    /// budget refuses even a free one).
    #[inline(always)]
    fn fits(&self, needed: u64, unix: f64) -> bool {
        needed < self.room(unix)
    }

    /// What a request must cost less than (nano-USD) to fit at Unix time
    /// `unix`: 0 once the budget is used up, so even a free one does not.
    #[inline(always)]
    fn room(&self, unix: f64) -> u64 {
        let used = self.spent_at(unix).saturating_add(self.reserved);
        if used < self.capacity {
            (self.capacity - used).saturating_add(1)
        } else {
            0
        }
    }

    /// Spent in the current period at Unix time `unix` (0 once it ended).
    #[inline(always)]
    fn spent_at(&self, unix: f64) -> u64 {
        if unix < self.period_end {
            self.spent
        } else {
            0
        }
    }
}

/// A point-in-time view of one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetState {
    pub spec: BudgetSpec,
    pub limit: u64,
    /// The allowance set from outside (leases), if any.
    pub allowance: Option<u64>,
    pub spent: u64,
    pub reserved: u64,
    /// When the current period ends, in Unix seconds (UTC).
    pub resets_at_unix: f64,
    /// Seconds until then.
    pub resets_in_s: f64,
}

impl BudgetState {
    /// What a new request may still reserve: the capacity (the limit, or the
    /// allowance when smaller) less what is spent and reserved.
    pub fn remaining(&self) -> u64 {
        let capacity = self.allowance.map_or(self.limit, |a| a.min(self.limit));
        capacity.saturating_sub(self.spent.saturating_add(self.reserved))
    }
}

/// One selection's share of the budgets covering it, carried by its ticket:
/// `amount` nano-USD reserved in each budget covering its slot and tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hold {
    pub amount: u64,
    tenant: Option<u32>,
    /// Whether any budget covered it (`Hold::default()` holds nothing).
    pub held: bool,
}

/// An outstanding hold: its ticket's number, its slot, the hold.
pub type Held = (u64, usize, Hold);

/// A budget's name, for rejections (shared, so refusing allocates nothing).
fn budget_label(spec: &BudgetSpec) -> Arc<str> {
    Arc::from(format!(
        "{} {} {}",
        spec.scope.kind(),
        spec.scope.value(),
        spec.period.name()
    ))
}

/// Every budget, as arrays indexed by budget, and what covers each slot.
#[derive(Debug)]
pub struct Budgets {
    specs: Vec<Option<BudgetSpec>>,
    generation: Vec<u32>,
    labels: Vec<Arc<str>>,
    limit: Vec<u64>,
    allowance: Vec<Option<u64>>,
    /// What the check reads of each budget, together in one place.
    meters: Vec<Meter>,
    /// No period ends before this (Unix seconds).
    earliest_end: f64,
    by_name: FxHashMap<String, u32>,
    free: Vec<u32>,
    /// Budget indices covering each slot.
    per_slot: Vec<Vec<u32>>,
    /// Whether any budget covers each slot (its `per_slot` list is not
    /// empty): the scan reads only this dense array for an uncovered slot.
    covered: Vec<bool>,
    /// The live budgets of a model, provider or tag scope (the ones a
    /// `per_slot` list can hold).
    slot_budgets: Vec<u32>,
    /// Tenant name → index into `tenant_lists`.
    tenants: FxHashMap<String, u32>,
    tenant_lists: Vec<Vec<u32>>,
    /// The budgets `(index, generation)` each outstanding hold went to, by
    /// ticket number, recorded when the budgets covering holds change;
    /// holds not in it went to their slot's and tenant's current lists.
    frozen: FxHashMap<u64, Box<[(u32, u32)]>>,
    /// Unix time (UTC) at core-clock 0.
    wall_at_zero: f64,
}

impl Budgets {
    /// Budgets on a clock that reads `now` now, at Unix time `unix_now`.
    pub fn new(now: f64, unix_now: f64) -> Self {
        Budgets {
            specs: Vec::new(),
            generation: Vec::new(),
            labels: Vec::new(),
            limit: Vec::new(),
            allowance: Vec::new(),
            meters: Vec::new(),
            earliest_end: f64::INFINITY,
            by_name: FxHashMap::default(),
            free: Vec::new(),
            per_slot: Vec::new(),
            covered: Vec::new(),
            slot_budgets: Vec::new(),
            tenants: FxHashMap::default(),
            tenant_lists: Vec::new(),
            frozen: FxHashMap::default(),
            wall_at_zero: unix_now - now,
        }
    }

    /// Read the UTC clock again: `unix_now` is the time at core-clock `now`.
    /// Each budget's period is the one containing the new time.
    pub fn set_wall_clock(&mut self, now: f64, unix_now: f64) {
        self.wall_at_zero = unix_now - now;
        for b in 0..self.specs.len() {
            if let Some(spec) = &self.specs[b] {
                self.meters[b].period_end = spec.period.end_after(unix_now);
            }
        }
        self.refresh_earliest_end();
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    // ----- declaring -------------------------------------------------------

    /// Add a budget; `slots` are the active slots' specs (`None`: free
    /// slot), `held` every outstanding hold (see [`Self::freeze`]).
    pub fn add(
        &mut self,
        spec: BudgetSpec,
        slots: &[Option<&ModelSpec>],
        now: f64,
        held: impl Iterator<Item = Held>,
    ) -> Result<u32, CoreError> {
        spec.validate()?;
        if self.by_name.contains_key(&spec.name) {
            return Err(CoreError::invalid(
                "name",
                format!("{:?} (a budget of that name exists)", spec.name),
            ));
        }
        if self.by_name.len() >= MAX_BUDGETS {
            return Err(CoreError::invalid(
                "budgets",
                format!("{MAX_BUDGETS} (the most one registry holds)"),
            ));
        }
        self.freeze(held);
        let limit = nanos(spec.limit_usd);
        let end = spec.period.end_after(self.unix(now));
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                self.specs.push(None);
                self.generation.push(0);
                self.labels.push(Arc::from(""));
                self.limit.push(0);
                self.allowance.push(None);
                self.meters.push(Meter::default());
                (self.specs.len() - 1) as u32
            }
        };
        let i = b as usize;
        self.labels[i] = budget_label(&spec);
        self.limit[i] = limit;
        self.allowance[i] = None;
        self.meters[i] = Meter {
            capacity: limit,
            spent: 0,
            reserved: 0,
            period_end: end,
        };
        self.earliest_end = self.earliest_end.min(end);
        self.by_name.insert(spec.name.clone(), b);
        if let Scope::Tenant(tenant) = &spec.scope {
            let next = self.tenant_lists.len() as u32;
            let t = *self.tenants.entry(tenant.clone()).or_insert(next);
            if t == next {
                self.tenant_lists.push(Vec::new());
            }
            self.tenant_lists[t as usize].push(b);
        } else {
            self.slot_budgets.push(b);
            for (slot, model) in slots.iter().enumerate() {
                if model.is_some_and(|m| spec.scope.covers(m)) {
                    self.edit_slot_list(slot, |list| list.push(b));
                }
            }
        }
        self.specs[i] = Some(spec);
        Ok(b)
    }

    /// Remove a budget by name; what it reserved is forgotten with it.
    pub fn remove(
        &mut self,
        name: &str,
        held: impl Iterator<Item = Held>,
    ) -> Result<(), CoreError> {
        let b = self
            .by_name
            .remove(name)
            .ok_or_else(|| unknown_budget(name))?;
        self.freeze(held);
        let i = b as usize;
        for list in self.per_slot.iter_mut().chain(self.tenant_lists.iter_mut()) {
            list.retain(|&x| x != b);
        }
        self.slot_budgets.retain(|&x| x != b);
        for (covered, list) in self.covered.iter_mut().zip(&self.per_slot) {
            *covered = !list.is_empty();
        }
        self.specs[i] = None;
        self.generation[i] = self.generation[i].wrapping_add(1);
        self.free.push(b);
        self.refresh_earliest_end();
        Ok(())
    }

    /// Set (or with `None` clear) the most a budget may spend here in its
    /// period, below its limit: a worker's share of a budget held across
    /// workers. Spent and reserved amounts are unchanged.
    pub fn set_allowance(&mut self, name: &str, allowance: Option<u64>) -> Result<(), CoreError> {
        let i = self.index(name)?;
        self.allowance[i] = allowance;
        self.meters[i].capacity = allowance.map_or(self.limit[i], |a| a.min(self.limit[i]));
        Ok(())
    }

    /// A slot's model was registered (or its spec changed): the budgets
    /// whose scope covers it now.
    pub fn attach(&mut self, slot: usize, spec: &ModelSpec, held: impl Iterator<Item = Held>) {
        self.freeze(held);
        let covering: Vec<u32> = (0..self.specs.len() as u32)
            .filter(|&b| {
                self.specs[b as usize]
                    .as_ref()
                    .is_some_and(|s| s.scope.covers(spec))
            })
            .collect();
        self.edit_slot_list(slot, |list| *list = covering);
    }

    /// A slot's model was unregistered: its own holds (`held` lists every
    /// outstanding one) are spent, since calls may still be running whose
    /// outcome no longer reaches this table.
    pub fn detach(&mut self, slot: usize, now: f64, held: impl Iterator<Item = Held>) {
        let held: Vec<Held> = held.collect();
        for &(key, s, hold) in held.iter().filter(|h| h.1 == slot) {
            self.settle(key, s, hold, None, now);
        }
        self.freeze(held.into_iter().filter(|h| h.1 != slot));
        self.edit_slot_list(slot, Vec::clear);
    }

    /// Change the list of budgets covering `slot`, keeping `covered` true to it.
    fn edit_slot_list(&mut self, slot: usize, edit: impl FnOnce(&mut Vec<u32>)) {
        if self.per_slot.len() <= slot {
            self.per_slot.resize_with(slot + 1, Vec::new);
            self.covered.resize(slot + 1, false);
        }
        edit(&mut self.per_slot[slot]);
        self.covered[slot] = !self.per_slot[slot].is_empty();
    }

    /// Before the budgets covering any hold change: each outstanding hold
    /// (`held`) remembers where it went.
    fn freeze(&mut self, held: impl Iterator<Item = Held>) {
        for (key, slot, hold) in held {
            if !hold.held || self.frozen.contains_key(&key) {
                continue;
            }
            let went: Box<[(u32, u32)]> =
                covering(&self.per_slot, &self.tenant_lists, slot, hold.tenant)
                    .map(|b| (b, self.generation[b as usize]))
                    .collect();
            self.frozen.insert(key, went);
        }
    }

    fn index(&self, name: &str) -> Result<usize, CoreError> {
        self.by_name
            .get(name)
            .map(|&b| b as usize)
            .ok_or_else(|| unknown_budget(name))
    }

    /// The index of a tenant's budgets, `None` when it has none.
    #[inline]
    pub fn tenant(&self, name: &str) -> Option<u32> {
        if self.tenants.is_empty() {
            return None;
        }
        self.tenants.get(name).copied()
    }

    // ----- the hot path ----------------------------------------------------

    /// The Unix time at core-clock `now`.
    #[inline(always)]
    pub fn unix(&self, now: f64) -> f64 {
        now + self.wall_at_zero
    }

    /// What every check of a pass for a request of `tenant` at `now` shares;
    /// `cost_ceiling` (USD) bounds the expected cost of every slot the pass
    /// can admit.
    pub fn pass(&self, tenant: Option<u32>, now: f64, cost_ceiling: f64) -> BudgetPass {
        let unix = self.unix(now);
        let tenant_room = tenant.and_then(|t| {
            self.tenant_lists[t as usize]
                .iter()
                .map(|&b| self.meters[b as usize].room(unix))
                .min()
        });
        // Bounded work per pass: with many budgets, check the slots instead.
        let all_fit = self.slot_budgets.len() <= ALL_FIT_MAX_BUDGETS && {
            let ceiling = nanos(cost_ceiling);
            let fits = |b: &u32| ceiling < self.meters[*b as usize].room(unix);
            self.slot_budgets.iter().all(fits) && tenant_room.is_none_or(|room| ceiling < room)
        };
        BudgetPass {
            unix,
            tenant,
            all_fit,
            tenant_room,
        }
    }

    /// Whether every budget covering `slot` (and the pass's tenant) has
    /// room for a request of expected cost `cost` (`None`: unpriced,
    /// reserved as 0).
    #[inline(always)]
    pub fn admits(
        &self,
        slot: usize,
        pass: &BudgetPass,
        cost: Option<f64>,
    ) -> Result<(), Rejection> {
        if pass.all_fit {
            let checked = BudgetPass {
                all_fit: false,
                ..*pass
            };
            debug_assert_eq!(self.admits(slot, &checked, cost), Ok(()), "slot {slot}");
            return Ok(());
        }
        let covered = self.covered.get(slot).is_some_and(|&c| c);
        if !covered && pass.tenant_room.is_none() {
            return Ok(());
        }
        let needed = cost.map_or(0, nanos);
        let mut fit = pass.tenant_room.is_none_or(|room| needed < room);
        if covered {
            for &b in &self.per_slot[slot] {
                fit &= self.meters[b as usize].fits(needed, pass.unix);
            }
        }
        if fit {
            return Ok(());
        }
        self.first_refusal(slot, pass, needed)
    }

    /// The first budget covering `slot` or the pass's tenant that refuses
    /// a request of `needed`, as a rejection.
    #[cold]
    fn first_refusal(&self, slot: usize, pass: &BudgetPass, needed: u64) -> Result<(), Rejection> {
        for b in covering(&self.per_slot, &self.tenant_lists, slot, pass.tenant) {
            if !self.meters[b as usize].fits(needed, pass.unix) {
                return Err(self.refusal(b as usize, needed, pass.unix));
            }
        }
        Ok(())
    }

    /// Why budget `i` refuses a request of `needed` at Unix time `unix`.
    #[cold]
    fn refusal(&self, i: usize, needed: u64, unix: f64) -> Rejection {
        let m = &self.meters[i];
        Rejection::Budget {
            label: Arc::clone(&self.labels[i]),
            spent: m.spent_at(unix),
            reserved: m.reserved,
            limit: m.capacity,
            needed,
            resets_in_s: (m.period_end - unix).max(0.0),
        }
    }

    /// Reserve a request's expected cost in the budgets covering it (after
    /// [`Self::admits`] agreed): the hold its ticket carries.
    #[inline]
    pub fn reserve(&mut self, slot: usize, tenant: Option<u32>, cost: Option<f64>) -> Hold {
        let own = self.per_slot.get(slot).map_or(0, Vec::len);
        if own == 0 && tenant.is_none() {
            return Hold::default();
        }
        let amount = cost.map_or(0, nanos);
        for b in covering(&self.per_slot, &self.tenant_lists, slot, tenant) {
            self.meters[b as usize].reserved += amount;
        }
        Hold {
            amount,
            tenant,
            held: true,
        }
    }

    /// Settle the hold of ticket `key` on `slot`: `spent` (USD) replaces
    /// its reservation, `None` spends the reservation itself.
    pub fn settle(&mut self, key: u64, slot: usize, hold: Hold, spent: Option<f64>, now: f64) {
        if !hold.held {
            return;
        }
        let amount = spent.map_or(hold.amount, nanos);
        self.each_budget(key, slot, hold, |budgets, i| {
            budgets.meters[i].reserved -= hold.amount;
            budgets.roll(i, now);
            budgets.meters[i].spent = budgets.meters[i].spent.saturating_add(amount);
        });
    }

    /// Return the hold of ticket `key` on `slot`, whose request was never sent.
    pub fn release(&mut self, key: u64, slot: usize, hold: Hold) {
        if hold.held {
            self.each_budget(key, slot, hold, |budgets, i| {
                budgets.meters[i].reserved -= hold.amount
            });
        }
    }

    /// A call made without a selection here costs `usd` in the budgets
    /// covering its slot.
    pub fn spend_unselected(&mut self, slot: usize, usd: f64, now: f64) {
        let amount = nanos(usd);
        let own = self.per_slot.get(slot).map_or(0, Vec::len);
        for k in 0..own {
            let i = self.per_slot[slot][k] as usize;
            self.roll(i, now);
            self.meters[i].spent = self.meters[i].spent.saturating_add(amount);
        }
    }

    /// Run `f` on every live budget the hold of ticket `key` went to.
    fn each_budget(&mut self, key: u64, slot: usize, h: Hold, mut f: impl FnMut(&mut Self, usize)) {
        let frozen = if self.frozen.is_empty() {
            None
        } else {
            self.frozen.remove(&key)
        };
        match frozen {
            Some(frozen) => {
                for &(b, generation) in frozen.iter() {
                    if self.generation[b as usize] == generation && self.specs[b as usize].is_some()
                    {
                        f(self, b as usize);
                    }
                }
            }
            None => {
                for k in 0..self.per_slot.get(slot).map_or(0, Vec::len) {
                    let b = self.per_slot[slot][k];
                    f(self, b as usize);
                }
                if let Some(t) = h.tenant.map(|t| t as usize) {
                    for k in 0..self.tenant_lists[t].len() {
                        let b = self.tenant_lists[t][k];
                        f(self, b as usize);
                    }
                }
            }
        }
    }

    /// Start budget `i`'s next period if its current one ended by `now`.
    fn roll(&mut self, i: usize, now: f64) {
        let unix = self.unix(now);
        if unix >= self.meters[i].period_end {
            if let Some(spec) = &self.specs[i] {
                self.meters[i].spent = 0;
                self.meters[i].period_end = spec.period.end_after(unix);
            }
        }
    }

    /// Start the next period of every budget whose period ended (cheap
    /// until the earliest one does).
    #[inline]
    pub fn roll_due(&mut self, now: f64) {
        if self.unix(now) < self.earliest_end {
            return;
        }
        for i in 0..self.specs.len() {
            self.roll(i, now);
        }
        self.refresh_earliest_end();
    }

    fn refresh_earliest_end(&mut self) {
        self.earliest_end = (0..self.specs.len())
            .filter(|&i| self.specs[i].is_some())
            .map(|i| self.meters[i].period_end)
            .fold(f64::INFINITY, f64::min);
    }

    // ----- reading ---------------------------------------------------------

    /// Every budget as of `now`, in the order they were added (by index).
    pub fn states(&self, now: f64) -> Vec<BudgetState> {
        (0..self.specs.len())
            .filter_map(|i| self.state_at(i, now))
            .collect()
    }

    /// One budget by name as of `now`.
    pub fn state(&self, name: &str, now: f64) -> Result<BudgetState, CoreError> {
        let i = self.index(name)?;
        Ok(self.state_at(i, now).expect("a named budget is live"))
    }

    fn state_at(&self, i: usize, now: f64) -> Option<BudgetState> {
        let spec = self.specs[i].as_ref()?;
        let unix = self.unix(now);
        let (spent, end) = if unix < self.meters[i].period_end {
            (self.meters[i].spent, self.meters[i].period_end)
        } else {
            (0, spec.period.end_after(unix))
        };
        Some(BudgetState {
            spec: spec.clone(),
            limit: self.limit[i],
            allowance: self.allowance[i],
            spent,
            reserved: self.meters[i].reserved,
            resets_at_unix: end,
            resets_in_s: (end - unix).max(0.0),
        })
    }

    /// Holds whose budgets are recorded (for tests of leaks).
    pub fn frozen_holds(&self) -> usize {
        self.frozen.len()
    }
}

/// The budget indices covering `slot` for a request of `tenant`.
#[inline(always)]
fn covering<'a>(
    per_slot: &'a [Vec<u32>],
    tenant_lists: &'a [Vec<u32>],
    slot: usize,
    tenant: Option<u32>,
) -> impl Iterator<Item = u32> + 'a {
    let own = per_slot.get(slot).map_or(&[][..], Vec::as_slice);
    let theirs = tenant.map_or(&[][..], |t| tenant_lists[t as usize].as_slice());
    own.iter().chain(theirs).copied()
}

fn unknown_budget(name: &str) -> CoreError {
    CoreError::invalid("budget", format!("{name:?} (no budget of that name)"))
}

/// A nano-USD amount as dollars: cents when exact, else up to nano-dollars.
pub fn format_usd(amount: u64) -> String {
    let dollars = amount / NANOS_PER_USD;
    let frac = amount % NANOS_PER_USD;
    if frac % 10_000_000 == 0 {
        return format!("${dollars}.{:02}", frac / 10_000_000);
    }
    let digits = format!("{frac:09}");
    format!("${dollars}.{}", digits.trim_end_matches('0'))
}

/// Seconds as "3 h 2 min", "4 min 10 s", "12 s", "2 d 5 h".
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).ceil() as u64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {sec} s")
    } else {
        format!("{sec} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, provider: &str) -> ModelSpec {
        ModelSpec {
            name: name.to_owned(),
            provider: provider.to_owned(),
            capabilities: 0,
            context_length: 0,
            input_price_per_million: 0.0,
            output_price_per_million: 0.0,
            request_fee: 0.01,
            priced: true,
            declared_speed: None,
            limits: Default::default(),
            tags: vec!["eu".to_owned()],
            deployment: None,
        }
    }

    /// `b.admits` for a request of `cost` at `now`, which must agree
    /// whether the pass's cost ceiling is the request's or unbounded.
    fn admits(
        b: &Budgets,
        slot: usize,
        tenant: Option<u32>,
        cost: f64,
        now: f64,
    ) -> Result<(), Rejection> {
        let tight = b.admits(slot, &b.pass(tenant, now, cost), Some(cost));
        let loose = b.admits(slot, &b.pass(tenant, now, f64::INFINITY), Some(cost));
        assert_eq!(tight, loose);
        tight
    }

    #[test]
    fn nanos_rounds_like_f64_round() {
        let below_half = f64::from_bits(0.5f64.to_bits() - 1);
        for usd in [
            0.0,
            -1.0,
            f64::NAN,
            below_half / 1e9,
            0.5e-9,
            1.5e-9,
            2.5e-9,
            1e30,
            1e-3,
        ] {
            let expected = (usd * NANOS_PER_USD as f64).round() as u64;
            assert_eq!(nanos(usd), expected, "{usd}");
        }
    }

    proptest::proptest! {
        #[test]
        fn nanos_agrees_with_f64_round(usd in 0.0..1e12f64, tiny in 0.0..1e-6f64) {
            for x in [usd, tiny] {
                proptest::prop_assert_eq!(nanos(x), (x * NANOS_PER_USD as f64).round() as u64);
            }
        }
    }

    #[test]
    fn a_model_scope_covers_every_deployment_of_its_logical_model() {
        let mut azure = model("gpt-4o@azure", "openai");
        azure.deployment = Some("azure".to_owned());
        let plain = model("gpt-4o", "openai");
        let other = model("gpt-4o-mini", "openai");
        let logical = Scope::Model("gpt-4o".to_owned());
        let one = Scope::Model("gpt-4o@azure".to_owned());
        assert!(logical.covers(&azure) && logical.covers(&plain) && !logical.covers(&other));
        assert!(one.covers(&azure) && !one.covers(&plain));
    }

    fn budget(name: &str, scope: Scope, limit_usd: f64, period: Period) -> BudgetSpec {
        BudgetSpec::new(name, scope, limit_usd, period)
    }

    fn none() -> std::iter::Empty<Held> {
        std::iter::empty()
    }

    /// 2026-12-31 23:59:00 UTC.
    const NEW_YEARS_EVE: f64 = 1_798_761_540.0;

    #[test]
    fn calendar_periods_end_on_utc_boundaries() {
        let t = NEW_YEARS_EVE + 30.0;
        assert_eq!(Period::Minute.end_after(t), NEW_YEARS_EVE + 60.0);
        assert_eq!(Period::Hour.end_after(t), NEW_YEARS_EVE + 60.0);
        assert_eq!(Period::Day.end_after(t), NEW_YEARS_EVE + 60.0);
        assert_eq!(Period::Month.end_after(t), NEW_YEARS_EVE + 60.0);
        // 2028-02-15 → 2028-03-01 (a leap year).
        let feb = days_from_civil(2028, 2, 15) as f64 * 86_400.0;
        assert_eq!(
            Period::Month.end_after(feb),
            days_from_civil(2028, 3, 1) as f64 * 86_400.0
        );
        assert_eq!(
            days_from_civil(2028, 3, 1) - days_from_civil(2028, 2, 1),
            29
        );
        for z in [-800_000, -1, 0, 1, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn a_budget_admits_until_spent_and_resets_with_its_period() {
        let mut b = Budgets::new(0.0, NEW_YEARS_EVE);
        let a = model("a", "openai");
        b.add(
            budget("p", Scope::Provider("openai".into()), 0.03, Period::Minute),
            &[Some(&a)],
            0.0,
            none(),
        )
        .unwrap();
        let mut holds = Vec::new();
        for _ in 0..3 {
            admits(&b, 0, None, 0.01, 0.0).unwrap();
            holds.push(b.reserve(0, None, Some(0.01)));
        }
        match admits(&b, 0, None, 0.01, 1.0) {
            Err(Rejection::Budget {
                spent: 0,
                reserved: 30_000_000,
                resets_in_s,
                ..
            }) => assert_eq!(resets_in_s, 59.0),
            other => panic!("unexpected {other:?}"),
        }
        b.settle(1, 0, holds[0], Some(0.004), 1.0);
        b.release(2, 0, holds[1]);
        b.settle(3, 0, holds[2], None, 1.0);
        let s = b.state("p", 1.0).unwrap();
        assert_eq!((s.spent, s.reserved), (14_000_000, 0));
        assert_eq!(s.resets_at_unix, NEW_YEARS_EVE + 60.0);
        // The next minute starts empty.
        assert_eq!(b.state("p", 60.0).unwrap().spent, 0);
        b.roll_due(60.0);
        assert_eq!(b.state("p", 61.0).unwrap().resets_in_s, 59.0);
    }

    #[test]
    fn many_budgets_are_checked_slot_by_slot_with_the_same_verdicts() {
        let mut b = Budgets::new(0.0, NEW_YEARS_EVE);
        let a = model("a", "openai");
        let roomy = |i: usize| {
            budget(
                &format!("r{i}"),
                Scope::Provider("openai".into()),
                1.0,
                Period::Day,
            )
        };
        for i in 0..ALL_FIT_MAX_BUDGETS {
            b.add(roomy(i), &[Some(&a)], 0.0, none()).unwrap();
        }
        assert!(
            b.pass(None, 0.0, 0.01).all_fit,
            "few budgets: the pass skips the slots"
        );
        b.add(
            budget(
                "tight",
                Scope::Provider("openai".into()),
                0.015,
                Period::Day,
            ),
            &[Some(&a)],
            0.0,
            none(),
        )
        .unwrap();
        assert!(
            !b.pass(None, 0.0, 0.01).all_fit,
            "past the bound: slot by slot"
        );
        admits(&b, 0, None, 0.01, 0.0).unwrap();
        b.reserve(0, None, Some(0.01));
        assert!(
            admits(&b, 0, None, 0.01, 0.0).is_err(),
            "the tight budget still refuses"
        );
    }

    #[test]
    fn tenant_budgets_cover_only_their_requests() {
        let mut b = Budgets::new(0.0, NEW_YEARS_EVE);
        let a = model("a", "x");
        b.add(
            budget("t", Scope::Tenant("acme".into()), 0.01, Period::Day),
            &[Some(&a)],
            0.0,
            none(),
        )
        .unwrap();
        let acme = b.tenant("acme");
        assert!(acme.is_some() && b.tenant("other").is_none());
        let hold = b.reserve(0, acme, Some(0.01));
        assert!(admits(&b, 0, acme, 0.01, 0.0).is_err());
        assert!(admits(&b, 0, None, 0.01, 0.0).is_ok());
        b.settle(1, 0, hold, Some(0.01), 0.0);
        assert_eq!(b.state("t", 0.0).unwrap().spent, 10_000_000);
    }

    #[test]
    fn holds_stay_exact_while_budgets_change() {
        let mut b = Budgets::new(0.0, NEW_YEARS_EVE);
        let a = model("a", "x");
        let slots = [Some(&a)];
        let one = budget("one", Scope::Model("a".into()), 1.0, Period::Day);
        b.add(one, &slots, 0.0, none()).unwrap();
        let hold = b.reserve(0, None, Some(0.25));
        // A budget added while the call runs never got its reservation.
        let two = budget("two", Scope::Provider("x".into()), 1.0, Period::Day);
        b.add(two, &slots, 0.0, [(1, 0, hold)].into_iter()).unwrap();
        let later = b.reserve(0, None, Some(0.25));
        b.remove("one", [(1, 0, hold), (2, 0, later)].into_iter())
            .unwrap();
        assert_eq!(b.frozen_holds(), 2);
        b.settle(1, 0, hold, Some(0.5), 0.0);
        b.settle(2, 0, later, Some(0.125), 0.0);
        assert_eq!(b.frozen_holds(), 0);
        let two = b.state("two", 0.0).unwrap();
        assert_eq!((two.spent, two.reserved), (125_000_000, 0));
        // An unregistered model's holds are spent.
        let pending = b.reserve(0, None, Some(0.25));
        assert!(pending.held);
        b.detach(0, 0.0, [(3, 0, pending)].into_iter());
        let two = b.state("two", 0.0).unwrap();
        assert_eq!((two.spent, two.reserved), (375_000_000, 0));
        assert_eq!(b.frozen_holds(), 0);
    }

    #[test]
    fn an_allowance_narrows_a_budget_here() {
        let mut b = Budgets::new(0.0, NEW_YEARS_EVE);
        let a = model("a", "x");
        b.add(
            budget("p", Scope::Provider("x".into()), 1.0, Period::Day),
            &[Some(&a)],
            0.0,
            none(),
        )
        .unwrap();
        b.set_allowance("p", Some(nanos(0.01))).unwrap();
        b.reserve(0, None, Some(0.01));
        assert!(matches!(
            admits(&b, 0, None, 0.0, 0.0),
            Err(Rejection::Budget {
                limit: 10_000_000,
                ..
            })
        ));
        b.set_allowance("p", None).unwrap();
        assert!(admits(&b, 0, None, 0.01, 0.0).is_ok());
        assert!(b.set_allowance("nope", None).is_err());
    }

    #[test]
    fn bad_budgets_name_the_field() {
        let mut b = Budgets::new(0.0, 0.0);
        for (spec, field) in [
            (
                budget("", Scope::Tenant("t".into()), 1.0, Period::Day),
                "name",
            ),
            (
                budget("n", Scope::Tenant("".into()), 1.0, Period::Day),
                "tenant",
            ),
            (
                budget("n", Scope::Model("a\nb".into()), 1.0, Period::Day),
                "model",
            ),
            (
                budget("n", Scope::Tag("EU".into()), 1.0, Period::Day),
                "tag",
            ),
            (
                budget("n", Scope::Model("t".into()), f64::NAN, Period::Day),
                "limit_usd",
            ),
            (
                budget("n", Scope::Model("t".into()), -1.0, Period::Day),
                "limit_usd",
            ),
            (
                budget("n", Scope::Model("t".into()), 0.0, Period::Day),
                "limit_usd",
            ),
            (
                budget("n", Scope::Model("t".into()), 2e9, Period::Day),
                "limit_usd",
            ),
        ] {
            let err = b.add(spec, &[], 0.0, none()).unwrap_err();
            assert!(err.to_string().contains(field), "{err} names {field}");
        }
        b.add(
            budget("n", Scope::Model("t".into()), 1.0, Period::Day),
            &[],
            0.0,
            none(),
        )
        .unwrap();
        assert!(b
            .add(
                budget("n", Scope::Model("t".into()), 1.0, Period::Day),
                &[],
                0.0,
                none()
            )
            .is_err());
        assert!(Period::from_name("week")
            .unwrap_err()
            .to_string()
            .contains("period"));
    }

    #[test]
    fn amounts_read_as_dollars_and_durations_as_units() {
        assert_eq!(format_usd(4_990_000_000), "$4.99");
        assert_eq!(format_usd(10_000_000), "$0.01");
        assert_eq!(format_usd(15_000), "$0.000015");
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_duration(3.0 * 3600.0 + 120.0), "3 h 2 min");
        assert_eq!(format_duration(250.0), "4 min 10 s");
        assert_eq!(format_duration(11.2), "12 s");
        assert_eq!(format_duration(2.0 * 86_400.0 + 5.0 * 3600.0), "2 d 5 h");
    }
}
