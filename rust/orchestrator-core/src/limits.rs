//! Rate limits per model: requests and tokens per minute, enforced before
//! selection.
//!
//! Each limited slot keeps a **sliding log** of the reservations made in the
//! last [`WINDOW_S`] seconds (one entry per admitted request: when, and how
//! many tokens), with running totals of the live requests and tokens in it.
//! A request is admitted at `now` when the reservations made in
//! `(now - WINDOW_S, now]`, plus this one, stay within `rpm` and `tpm`. The
//! log is exact: "60/60 requests in the last minute" counts exactly the
//! requests admitted in the last 60 s, and "next slot in 3.2 s" is exactly
//! when the oldest of them leaves the window (no bucket rounding, unlike a
//! fixed-window counter; no burst allowance, unlike GCRA).
//!
//! Cost: checking is O(1) on the totals (entries that expired since the
//! last sweep are walked only on the rejection path, so a check never
//! undercounts). A window drops its expired entries whenever it logs a new
//! one, and [`Limits::sweep_due`] refreshes every window's totals at most
//! once per [`SWEEP_INTERVAL_S`]: amortised O(1) per reservation. Memory is
//! one entry (48 bytes) per request in the last minute: at most `rpm` per
//! slot, and never more than [`MAX_RPM`] (a model with only `tpm` admits at
//! most `MAX_RPM` requests per minute, and a window counts no more than that
//! of the calls reported without a selection). Cancelled reservations leave
//! dead entries that are compacted once they outnumber the live ones.
//!
//! A reservation is reconciled when its outcome is reported: the reported
//! tokens replace the estimate, at the reservation's time. A cancelled or
//! expired reservation returns its request and tokens. A call reported
//! without a reservation (not selected here) is counted at report time.
//!
//! The window's length is a parameter of the table ([`Limits::set_window`],
//! default [`WINDOW_S`]); "minute" below is that length.
//!
//! **Shared windows** ([`Limits::share`]): with many workers, each slot
//! also admits only within its leases of the shared counters of requests
//! and tokens (see [`crate::leases`]): a reservation takes from them and
//! records which grant it came from, so a cancelled reservation, or one
//! reconciled below its estimate, goes back to that grant. While the
//! counters are unreachable the slot enforces this worker's share on its
//! local log instead ([`Limits::fall_back`]); what it admits then is
//! charged to the counters when they are back ([`Limits::take_unrecorded`]).
//!
//! Limits learned from a provider's headers ("N requests/tokens remaining,
//! resets in T s") add a cap that holds until the reset (at most
//! [`WINDOW_S`] away, so a hostile header cannot park a model): the latest
//! report replaces the previous cap, less the requests still in flight. It
//! is enforced alongside the configured window, so it can only tighten it.

use std::collections::VecDeque;

use crate::error::CoreError;
use crate::leases::{Lease, LeaseState};
use crate::spec::Rejection;

/// The default window of `rpm` and `tpm`, in seconds
/// ([`Limits::set_window`] changes it).
pub const WINDOW_S: f64 = 60.0;
/// The longest window [`Limits::set_window`] accepts (a day).
pub const MAX_WINDOW_S: f64 = 86_400.0;
/// The largest `rpm`, and the most requests a limited model admits per window.
pub const MAX_RPM: u32 = 1_000_000;
/// The largest `tpm` (the outcome token maximum, 2**40).
pub const MAX_TPM: u64 = crate::outcome::MAX_TOKENS;
/// The longest a window's totals go without dropping expired entries.
pub const SWEEP_INTERVAL_S: f64 = 1.0;
/// Dead entries tolerated beyond the live ones before a log is compacted.
const COMPACT_SLACK: usize = 64;

/// A model's configured limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

impl RateLimits {
    pub fn validate(&self) -> Result<(), CoreError> {
        if let Some(rpm) = self.rpm {
            if !(1..=MAX_RPM).contains(&rpm) {
                return Err(CoreError::invalid(
                    "rpm",
                    format!("{rpm} (an integer from 1 to {MAX_RPM})"),
                ));
            }
        }
        if let Some(tpm) = self.tpm {
            if !(1..=MAX_TPM).contains(&tpm) {
                return Err(CoreError::invalid(
                    "tpm",
                    format!("{tpm} (an integer from 1 to {MAX_TPM})"),
                ));
            }
        }
        Ok(())
    }

    fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// What a provider reported of its own limits with one call's response.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProviderLimits {
    pub remaining_requests: Option<u64>,
    /// Seconds until the provider's request allowance resets.
    pub requests_reset_s: Option<f64>,
    pub remaining_tokens: Option<u64>,
    /// Seconds until the provider's token allowance resets.
    pub tokens_reset_s: Option<f64>,
}

impl ProviderLimits {
    pub fn validate(&self) -> Result<(), CoreError> {
        for (field, reset) in [
            ("requests_reset", self.requests_reset_s),
            ("tokens_reset", self.tokens_reset_s),
        ] {
            if let Some(s) = reset {
                crate::error::non_negative(field, s)?;
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.remaining_requests.is_none() && self.remaining_tokens.is_none()
    }
}

/// Which allowance a rejection is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
}

impl LimitKind {
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
        }
    }
}

/// What a reported outcome settles in its model's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The reservation its ticket held (0: the model was not limited then).
    Held(u64),
    /// A call the model made without a selection here: counted now.
    Unselected,
    /// A manual report (`report_outcome` without a ticket): no call to count.
    Uncounted,
}

/// A cap learned from a provider: `remaining` until `until` (core clock).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Learned {
    remaining: u64,
    until: f64,
}

impl Learned {
    fn active(&self, now: f64) -> bool {
        now < self.until
    }

    fn take(&mut self, amount: u64, now: f64) {
        if self.active(now) {
            self.remaining = self.remaining.saturating_sub(amount);
        }
    }
}

/// Whether the shared counters know of a reservation (see [`SharedWindow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Recorded {
    /// Not shared, or admitted on the local share during an outage.
    #[default]
    No,
    /// Taken from the leases' grants (`request_grant`, `token_grant`).
    Leased,
    /// Charged to the counters after an outage; nothing of it goes back.
    Charged,
}

/// One reservation in a window's log.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    at: f64,
    /// Increasing along the log: how a ticket finds its reservation.
    seq: u64,
    tokens: u64,
    live: bool,
    recorded: Recorded,
    /// The lease grants the request and its tokens came from (when `Leased`).
    request_grant: u64,
    token_grant: u64,
}

/// A window shared with other workers: the shared counters' leases, which
/// admit on top of the local log, or, while the counters are unreachable,
/// this worker's share of the limits, enforced on the local log.
#[derive(Debug, Clone, Default)]
struct SharedWindow {
    requests: Lease,
    tokens: Lease,
    fallback: Option<RateLimits>,
    /// When the lease thread tops the leases up next, at the latest (seconds).
    top_up_in_s: f64,
    /// Reservations admitted since the counters last heard of them (a hint:
    /// [`Limits::take_unrecorded`] counts them exactly).
    unrecorded: u32,
}

impl SharedWindow {
    #[cold]
    fn spent(&self, kind: LimitKind, needed: u64, now: f64) -> Rejection {
        let lease = match kind {
            LimitKind::Requests => &self.requests,
            LimitKind::Tokens => &self.tokens,
        };
        Rejection::LeaseSpent {
            kind,
            held: lease.available(now),
            needed,
            retry_in_s: self.top_up_in_s,
        }
    }
}

fn min_some<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// One slot's window: its limits, running totals and log.
#[derive(Debug, Clone, Default)]
struct Window {
    limits: RateLimits,
    /// Live requests and tokens in the log (entries not yet swept included).
    requests: u32,
    tokens: u64,
    learned_requests: Learned,
    learned_tokens: Learned,
    /// When the latest learned cap ends; a slot without configured limits
    /// is checked only before then.
    learned_until: f64,
    log: VecDeque<Entry>,
    dead: usize,
    next_seq: u64,
    window_s: f64,
    shared: Option<SharedWindow>,
}

impl Window {
    #[inline]
    fn in_window(&self, e: &Entry, now: f64) -> bool {
        e.at + self.window_s > now
    }

    /// The limits enforced on the local log: the configured ones, tightened
    /// to this worker's share while the shared counters are unreachable.
    #[inline]
    fn enforced(&self) -> RateLimits {
        match self.shared.as_ref().and_then(|s| s.fallback) {
            None => self.limits,
            Some(share) => RateLimits {
                rpm: min_some(self.limits.rpm, share.rpm),
                tpm: min_some(self.limits.tpm, share.tpm),
            },
        }
    }

    /// The leases' verdict on one more request of `needed` tokens.
    #[inline]
    fn leases_admit(&self, s: &SharedWindow, needed: u64, now: f64) -> Result<(), Rejection> {
        if s.fallback.is_some() {
            return Ok(());
        }
        if self.limits.rpm.is_some() && !s.requests.admits(1, now) {
            return Err(s.spent(LimitKind::Requests, 1, now));
        }
        if self.limits.tpm.is_some() && !s.tokens.admits(needed, now) {
            return Err(s.spent(LimitKind::Tokens, needed, now));
        }
        Ok(())
    }

    /// Live requests and tokens in the window at `now`, and the index of
    /// the first entry still in it.
    fn used_at(&self, now: f64) -> (u32, u64, usize) {
        let (mut requests, mut tokens) = (self.requests, self.tokens);
        let mut first = 0;
        for e in &self.log {
            if self.in_window(e, now) {
                break;
            }
            if e.live {
                requests -= 1;
                tokens -= e.tokens;
            }
            first += 1;
        }
        (requests, tokens, first)
    }

    /// Seconds until enough of the window's live entries (from `first`)
    /// leave it that `fits(requests_left, tokens_left)` holds.
    fn wait(
        &self,
        now: f64,
        first: usize,
        (mut requests, mut tokens): (u32, u64),
        fits: impl Fn(u32, u64) -> bool,
    ) -> f64 {
        for e in self.log.iter().skip(first).filter(|e| e.live) {
            requests -= 1;
            tokens -= e.tokens;
            if fits(requests, tokens) {
                return (e.at + self.window_s - now).max(0.0);
            }
        }
        0.0
    }

    #[inline]
    fn admits(&self, needed: u64, now: f64) -> Result<(), Rejection> {
        if !self.limits.any() && now >= self.learned_until {
            return Ok(());
        }
        let limits = self.enforced();
        let rpm = limits.rpm.unwrap_or(MAX_RPM);
        let tpm = limits.tpm.unwrap_or(u64::MAX);
        if needed > tpm {
            return Err(Rejection::TokenLimit {
                used: 0,
                needed,
                limit: tpm,
                retry_in_s: None,
                window_s: self.window_s,
            });
        }
        let fits =
            |requests: u32, tokens: u64| requests < rpm && tokens.saturating_add(needed) <= tpm;
        if !fits(self.requests, self.tokens) {
            let (requests, tokens, first) = self.used_at(now);
            if !fits(requests, tokens) {
                let retry_in_s = self.wait(now, first, (requests, tokens), fits);
                return Err(if requests >= rpm {
                    Rejection::RequestLimit {
                        used: requests,
                        limit: rpm,
                        retry_in_s,
                        window_s: self.window_s,
                    }
                } else {
                    Rejection::TokenLimit {
                        used: tokens,
                        needed,
                        limit: tpm,
                        retry_in_s: Some(retry_in_s),
                        window_s: self.window_s,
                    }
                });
            }
        }
        if self.learned_requests.active(now) && self.learned_requests.remaining == 0 {
            return Err(Rejection::ProviderLimit {
                kind: LimitKind::Requests,
                remaining: 0,
                needed: 1,
                retry_in_s: self.learned_requests.until - now,
            });
        }
        if self.learned_tokens.active(now) && self.learned_tokens.remaining < needed {
            return Err(Rejection::ProviderLimit {
                kind: LimitKind::Tokens,
                remaining: self.learned_tokens.remaining,
                needed,
                retry_in_s: self.learned_tokens.until - now,
            });
        }
        match &self.shared {
            Some(s) => self.leases_admit(s, needed, now),
            None => Ok(()),
        }
    }

    /// Log one request of `tokens` at `now` (dropping expired entries first).
    fn push(&mut self, now: f64, tokens: u64) -> u64 {
        self.sweep(now);
        self.next_seq += 1;
        let mut entry = Entry {
            at: now,
            seq: self.next_seq,
            tokens,
            live: true,
            recorded: Recorded::No,
            request_grant: 0,
            token_grant: 0,
        };
        match self.shared.as_mut() {
            Some(s) if s.fallback.is_none() => {
                entry.recorded = Recorded::Leased;
                if self.limits.rpm.is_some() {
                    entry.request_grant = s.requests.take(1, now);
                }
                if self.limits.tpm.is_some() {
                    entry.token_grant = s.tokens.take(tokens, now);
                }
            }
            Some(s) => s.unrecorded += 1,
            None => {}
        }
        self.log.push_back(entry);
        self.requests += 1;
        self.tokens += tokens;
        self.learned_requests.take(1, now);
        self.learned_tokens.take(tokens, now);
        self.next_seq
    }

    fn entry(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = self.log.binary_search_by_key(&seq, |e| e.seq).ok()?;
        self.log.get_mut(i).filter(|e| e.live)
    }

    fn reconcile(&mut self, seq: u64, tokens: u64, now: f64) {
        let tpm_limited = self.limits.tpm.is_some();
        let Some(e) = self.entry(seq) else {
            return;
        };
        let old = std::mem::replace(&mut e.tokens, tokens);
        let (recorded, grant) = (e.recorded, e.token_grant);
        self.tokens = self.tokens - old + tokens;
        match self.shared.as_mut() {
            Some(s) if tpm_limited && recorded != Recorded::No => {
                if tokens > old {
                    s.tokens.charge(tokens - old, now);
                } else if recorded == Recorded::Leased {
                    s.tokens.give_back(grant, old - tokens);
                }
            }
            _ => {}
        }
    }

    fn cancel(&mut self, seq: u64) {
        let (rpm_limited, tpm_limited) = (self.limits.rpm.is_some(), self.limits.tpm.is_some());
        let Some(e) = self.entry(seq) else {
            return;
        };
        e.live = false;
        let tokens = std::mem::take(&mut e.tokens);
        let (recorded, request_grant, token_grant) = (e.recorded, e.request_grant, e.token_grant);
        if let Some(s) = self
            .shared
            .as_mut()
            .filter(|_| recorded == Recorded::Leased)
        {
            if rpm_limited {
                s.requests.give_back(request_grant, 1);
            }
            if tpm_limited {
                s.tokens.give_back(token_grant, tokens);
            }
        }
        self.requests -= 1;
        self.tokens -= tokens;
        self.dead += 1;
        while self.log.back().is_some_and(|e| !e.live) {
            self.log.pop_back();
            self.dead -= 1;
        }
        if self.dead > self.log.len() - self.dead + COMPACT_SLACK {
            self.log.retain(|e| e.live);
            self.dead = 0;
        }
    }

    /// Drop the entries that left the window; when the next one leaves.
    fn sweep(&mut self, now: f64) -> f64 {
        while let Some(e) = self.log.front() {
            if self.in_window(e, now) {
                return e.at + self.window_s;
            }
            if e.live {
                self.requests -= 1;
                self.tokens -= e.tokens;
            } else {
                self.dead -= 1;
            }
            self.log.pop_front();
        }
        f64::INFINITY
    }

    fn learn(&mut self, reported: &ProviderLimits, in_flight: u32, now: f64) {
        let window_s = self.window_s;
        let until = |reset: Option<f64>| now + reset.unwrap_or(window_s).min(window_s);
        if let Some(remaining) = reported.remaining_requests {
            self.learned_requests = Learned {
                remaining: remaining.saturating_sub(u64::from(in_flight)),
                until: until(reported.requests_reset_s),
            };
        }
        if let Some(remaining) = reported.remaining_tokens {
            self.learned_tokens = Learned {
                remaining,
                until: until(reported.tokens_reset_s),
            };
        }
        self.learned_until = self.learned_requests.until.max(self.learned_tokens.until);
    }
}

/// A point-in-time view of one slot's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowState {
    pub limits: RateLimits,
    pub requests: u32,
    pub tokens: u64,
    /// A provider's learned caps: `(remaining, seconds until reset)`.
    pub provider_requests: Option<(u64, f64)>,
    pub provider_tokens: Option<(u64, f64)>,
}

/// A slot's leases of the shared counters, for the lease thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedWindowState {
    pub requests: LeaseState,
    pub tokens: LeaseState,
    /// This worker's share while the counters are unreachable.
    pub fallback: Option<RateLimits>,
    /// Some reservations may not be known to the counters yet.
    pub unrecorded: bool,
}

/// What a slot owes back to the shared counters: `(grant, amount)` per kind.
pub type Returns = (Vec<(u64, u64)>, Vec<(u64, u64)>);

/// What a selection needs of one slot's window to admit a request without
/// reading the window: enough for a slot without limits, and for a limited
/// one with room in its log, no learned cap active and, when shared, room
/// in its leases.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Gate {
    /// Until when the window may refuse: forever while it has configured
    /// limits, else until its learned caps end.
    watched_until: f64,
    /// From when no learned cap is active: their end.
    plain_from: f64,
    /// Until when the leases' holdings below stay true (their earliest
    /// grant's expiry; forever when not shared or on the outage share).
    leased_until: f64,
    /// What the request and token leases hold, less their debt (`MAX` for
    /// a kind the leases do not limit).
    leased_requests: u64,
    leased_tokens: u64,
    /// Requests left under its limits by its running totals (which count
    /// entries not yet swept: never more than the truth), and what a
    /// request's tokens must be below to fit (0 once over the limit, when
    /// reported usage exceeded the estimates).
    requests_left: u32,
    tokens_room: u64,
}

impl Gate {
    fn of(w: &Window) -> Self {
        let enforced = w.enforced();
        let unlimited = (u64::MAX, f64::INFINITY);
        let (requests, tokens) = match &w.shared {
            Some(s) if s.fallback.is_none() => (
                w.limits.rpm.map_or(unlimited, |_| s.requests.steady()),
                w.limits.tpm.map_or(unlimited, |_| s.tokens.steady()),
            ),
            _ => (unlimited, unlimited),
        };
        Gate {
            watched_until: if w.limits.any() {
                f64::INFINITY
            } else {
                w.learned_until
            },
            plain_from: w.learned_until,
            leased_until: requests.1.min(tokens.1),
            leased_requests: requests.0,
            leased_tokens: tokens.0,
            requests_left: enforced.rpm.unwrap_or(MAX_RPM).saturating_sub(w.requests),
            tokens_room: enforced
                .tpm
                .unwrap_or(u64::MAX)
                .checked_sub(w.tokens)
                .map_or(0, |left| left.saturating_add(1)),
        }
    }

    /// Whether the gate alone admits one more request of `needed` tokens
    /// at `now` (`false`: ask the window).
    #[inline(always)]
    fn admits(&self, needed: u64, now: f64) -> bool {
        now >= self.watched_until
            || (now >= self.plain_from
                && self.requests_left > 0
                && needed < self.tokens_room
                && now < self.leased_until
                && self.leased_requests > 0
                && needed <= self.leased_tokens)
    }
}

/// Every slot's window, indexed by slot like the table's other arrays.
#[derive(Debug)]
pub struct Limits {
    windows: Vec<Window>,
    /// What the scan reads of each slot's window, kept true to it by
    /// [`Limits::watch`] after every change: a dense array, so the common
    /// checks stay in cache however many models there are.
    gates: Vec<Gate>,
    /// No log entry leaves its window before this time.
    earliest_expiry: f64,
    window_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            windows: Vec::new(),
            gates: Vec::new(),
            earliest_expiry: 0.0,
            window_s: WINDOW_S,
        }
    }
}

impl Limits {
    /// A fresh window for `slot` (a new or reused slot).
    pub fn reset(&mut self, slot: usize, limits: RateLimits) {
        if self.windows.len() <= slot {
            self.windows.resize_with(slot + 1, Window::default);
            self.gates.resize(slot + 1, Gate::default());
        }
        self.windows[slot] = Window {
            limits,
            window_s: self.window_s,
            ..Window::default()
        };
        self.watch(slot);
    }

    /// Bring `slot`'s gate up to date after its window changed.
    #[inline]
    fn watch(&mut self, slot: usize) {
        self.gates[slot] = Gate::of(&self.windows[slot]);
    }

    /// The window's length in seconds.
    pub fn window(&self) -> f64 {
        self.window_s
    }

    /// Change the window's length (every slot's; what each admitted stays
    /// logged and is judged by the new length). `(0, MAX_WINDOW_S]` seconds.
    pub fn set_window(&mut self, seconds: f64) -> Result<(), CoreError> {
        if !(seconds > 0.0 && seconds <= MAX_WINDOW_S) {
            return Err(CoreError::invalid(
                "window",
                format!("{seconds} (seconds, > 0 and at most {MAX_WINDOW_S})"),
            ));
        }
        self.window_s = seconds;
        for w in &mut self.windows {
            w.window_s = seconds;
        }
        self.earliest_expiry = 0.0;
        Ok(())
    }

    // ----- sharing with other workers (see crate::leases) -------------------

    /// Enforce `slot`'s limits across workers from now on: it admits only
    /// within its leases (none yet: the lease thread grants them). A refusal
    /// says the next top-up comes within `top_up_in_s`. Its reservations so
    /// far are unrecorded (the lease thread charges them).
    pub fn share(&mut self, slot: usize, top_up_in_s: f64) -> Result<(), CoreError> {
        crate::error::non_negative("top_up_in", top_up_in_s)?;
        let w = &mut self.windows[slot];
        let unrecorded = w.log.len() as u32;
        w.shared
            .get_or_insert_with(SharedWindow::default)
            .top_up_in_s = top_up_in_s;
        if let Some(s) = w.shared.as_mut() {
            s.unrecorded = s.unrecorded.max(unrecorded);
        }
        self.watch(slot);
        Ok(())
    }

    /// Stop sharing `slot`: what its leases hold or owe goes back.
    pub fn unshare(&mut self, slot: usize) -> Returns {
        let returns = match self.windows[slot].shared.take() {
            Some(mut s) => (s.requests.release(), s.tokens.release()),
            None => Default::default(),
        };
        self.watch(slot);
        returns
    }

    fn shared_mut(&mut self, slot: usize) -> Result<&mut SharedWindow, CoreError> {
        self.windows[slot].shared.as_mut().ok_or_else(|| {
            CoreError::invalid("slot", format!("{slot} (its limits are not shared)"))
        })
    }

    /// Add a grant of the shared counter of `kind` to `slot`'s lease.
    pub fn grant(
        &mut self,
        slot: usize,
        kind: LimitKind,
        id: u64,
        amount: u64,
        expires_at: f64,
        now: f64,
    ) -> Result<(), CoreError> {
        let s = self.shared_mut(slot)?;
        let granted = match kind {
            LimitKind::Requests => s.requests.grant(id, amount, expires_at, now),
            LimitKind::Tokens => s.tokens.grant(id, amount, expires_at, now),
        };
        self.watch(slot);
        granted
    }

    /// What `slot` owes back to the counters as of `now`, emptied.
    pub fn take_returns(&mut self, slot: usize, now: f64) -> Result<Returns, CoreError> {
        let s = self.shared_mut(slot)?;
        let returns = (s.requests.take_returns(now), s.tokens.take_returns(now));
        self.watch(slot);
        Ok(returns)
    }

    /// The counters are unreachable: `slot` gives up its leases (returned
    /// when they are back) and enforces `share` on its local log, which
    /// counts what the leases admitted too (so never more than the share).
    pub fn fall_back(&mut self, slot: usize, share: RateLimits) -> Result<Returns, CoreError> {
        share.validate()?;
        let s = self.shared_mut(slot)?;
        s.fallback = Some(share);
        let returns = (s.requests.release(), s.tokens.release());
        self.watch(slot);
        Ok(returns)
    }

    /// The counters are back: `slot` admits within its leases again.
    pub fn recover(&mut self, slot: usize) -> Result<(), CoreError> {
        self.shared_mut(slot)?.fallback = None;
        self.watch(slot);
        Ok(())
    }

    /// The requests and tokens `slot` admitted in the window at `now` that
    /// the counters do not know of (on the local share, or before sharing),
    /// now marked as charged: the lease thread adds them to the counters.
    pub fn take_unrecorded(&mut self, slot: usize, now: f64) -> Result<(u32, u64), CoreError> {
        self.shared_mut(slot)?.unrecorded = 0;
        let w = &mut self.windows[slot];
        let window_s = w.window_s;
        let (mut requests, mut tokens) = (0, 0);
        for e in w.log.iter_mut().rev() {
            if e.at + window_s <= now {
                break;
            }
            if e.live && e.recorded == Recorded::No {
                e.recorded = Recorded::Charged;
                requests += 1;
                tokens += e.tokens;
            }
        }
        Ok((requests, tokens))
    }

    /// `slot`'s leases, or `None` when its limits are not shared.
    pub fn shared_state(&self, slot: usize, now: f64) -> Option<SharedWindowState> {
        self.windows[slot]
            .shared
            .as_ref()
            .map(|s| SharedWindowState {
                requests: s.requests.state(now),
                tokens: s.tokens.state(now),
                fallback: s.fallback,
                unrecorded: s.unrecorded > 0,
            })
    }

    /// Change a slot's configured limits; what it admitted stays counted.
    pub fn configure(&mut self, slot: usize, limits: RateLimits) {
        self.windows[slot].limits = limits;
        self.watch(slot);
    }

    /// Whether `slot` admits one more request of `tokens` at `now`.
    #[inline(always)]
    pub fn admits(&self, slot: usize, tokens: u64, now: f64) -> Result<(), Rejection> {
        debug_assert_eq!(
            self.gates[slot],
            Gate::of(&self.windows[slot]),
            "gate of slot {slot}"
        );
        if self.gates[slot].admits(tokens, now) {
            debug_assert_eq!(
                self.windows[slot].admits(tokens, now),
                Ok(()),
                "slot {slot}"
            );
            return Ok(());
        }
        self.windows[slot].admits(tokens, now)
    }

    /// Reserve one request of `tokens` on `slot` at `now` (after
    /// [`Self::admits`] agreed): the reservation's number, for the ticket.
    pub fn reserve(&mut self, slot: usize, tokens: u64, now: f64) -> u64 {
        let w = &mut self.windows[slot];
        if !w.limits.any() && now >= w.learned_until {
            return 0;
        }
        if w.log.is_empty() {
            self.earliest_expiry = self.earliest_expiry.min(now + w.window_s);
        }
        let seq = w.push(now, tokens);
        self.watch(slot);
        seq
    }

    /// A reported call: its reservation's estimate becomes the reported
    /// `tokens`; a call without one (not selected here) is counted now.
    /// Then learn the provider's reported limits.
    pub fn settle(
        &mut self,
        slot: usize,
        reservation: Reservation,
        tokens: u64,
        reported: &ProviderLimits,
        in_flight: u32,
        now: f64,
    ) {
        let w = &mut self.windows[slot];
        match reservation {
            Reservation::Held(0) | Reservation::Uncounted => {}
            Reservation::Held(seq) => w.reconcile(seq, tokens, now),
            Reservation::Unselected
                if (w.limits.any() || now < w.learned_until) && w.requests < MAX_RPM =>
            {
                if w.log.is_empty() {
                    self.earliest_expiry = self.earliest_expiry.min(now + w.window_s);
                }
                w.push(now, tokens);
            }
            Reservation::Unselected => {}
        }
        if !reported.is_empty() {
            self.windows[slot].learn(reported, in_flight, now);
        }
        self.watch(slot);
    }

    /// Return a reservation whose request was not sent (cancelled, expired).
    pub fn cancel(&mut self, slot: usize, reservation: u64) {
        if reservation != 0 {
            self.windows[slot].cancel(reservation);
            self.watch(slot);
        }
    }

    /// Drop expired entries from every window once one is due, at most
    /// once per [`SWEEP_INTERVAL_S`] (checks stay exact in between).
    #[inline]
    pub fn sweep_due(&mut self, now: f64) {
        if now < self.earliest_expiry {
            return;
        }
        let next = self
            .windows
            .iter_mut()
            .map(|w| w.sweep(now))
            .fold(f64::INFINITY, f64::min);
        for (gate, w) in self.gates.iter_mut().zip(&self.windows) {
            *gate = Gate::of(w);
        }
        self.earliest_expiry = next.max(now + SWEEP_INTERVAL_S);
    }

    pub fn state(&self, slot: usize, now: f64) -> WindowState {
        let w = &self.windows[slot];
        let (requests, tokens, _) = w.used_at(now);
        let learned = |l: &Learned| l.active(now).then_some((l.remaining, l.until - now));
        WindowState {
            limits: w.limits,
            requests,
            tokens,
            provider_requests: learned(&w.learned_requests),
            provider_tokens: learned(&w.learned_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(rpm: Option<u32>, tpm: Option<u64>) -> Limits {
        let mut l = Limits::default();
        l.reset(0, RateLimits { rpm, tpm });
        l
    }

    #[test]
    fn a_full_window_names_its_count_and_the_next_slot() {
        let mut l = limited(Some(3), None);
        for t in [0.0, 1.0, 2.0] {
            l.admits(0, 10, t).unwrap();
            l.reserve(0, 10, t);
        }
        assert_eq!(
            l.admits(0, 10, 3.0),
            Err(Rejection::RequestLimit {
                used: 3,
                limit: 3,
                retry_in_s: 57.0,
                window_s: 60.0,
            })
        );
        assert_eq!(
            l.admits(0, 10, 60.0),
            Ok(()),
            "the first left at exactly 60 s"
        );
        l.sweep_due(60.0);
        assert_eq!(l.state(0, 60.0).requests, 2);
    }

    #[test]
    fn tokens_are_reserved_then_reconciled_and_cancelled_ones_return() {
        let mut l = limited(None, Some(1000));
        let a = l.reserve(0, 400, 0.0);
        let b = l.reserve(0, 400, 0.0);
        assert!(matches!(
            l.admits(0, 400, 1.0),
            Err(Rejection::TokenLimit { used: 800, .. })
        ));
        l.settle(
            0,
            Reservation::Held(a),
            50,
            &ProviderLimits::default(),
            1,
            1.0,
        );
        assert_eq!(l.admits(0, 400, 1.0), Ok(()));
        l.settle(
            0,
            Reservation::Held(b),
            950,
            &ProviderLimits::default(),
            0,
            1.0,
        );
        assert_eq!(
            l.state(0, 1.0).tokens,
            1000,
            "reported tokens replace the estimate"
        );
        l.cancel(0, b);
        assert_eq!(l.state(0, 1.0).tokens, 50);
        assert_eq!(l.state(0, 1.0).requests, 1);
    }

    #[test]
    fn a_request_larger_than_the_limit_never_fits() {
        let l = limited(None, Some(100));
        assert_eq!(
            l.admits(0, 101, 0.0),
            Err(Rejection::TokenLimit {
                used: 0,
                needed: 101,
                limit: 100,
                retry_in_s: None,
                window_s: 60.0,
            })
        );
    }

    #[test]
    fn provider_headers_tighten_and_their_reset_is_bounded() {
        let mut l = limited(None, None);
        let reported = ProviderLimits {
            remaining_requests: Some(2),
            requests_reset_s: Some(1e12),
            ..Default::default()
        };
        l.settle(0, Reservation::Unselected, 10, &reported, 1, 0.0);
        let seq = l.reserve(0, 10, 0.0);
        assert_ne!(seq, 0, "a learned cap is enforced");
        match l.admits(0, 10, 1.0) {
            Err(Rejection::ProviderLimit {
                kind: LimitKind::Requests,
                retry_in_s,
                ..
            }) => assert_eq!(retry_in_s, WINDOW_S - 1.0, "capped at the window"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(l.admits(0, 10, WINDOW_S), Ok(()));
    }

    #[test]
    fn dead_entries_are_compacted() {
        let mut l = limited(Some(MAX_RPM), None);
        let keep = l.reserve(0, 1, 0.0);
        let mut last = 0;
        for _ in 0..10_000 {
            let a = l.reserve(0, 1, 0.0);
            if last != 0 {
                l.cancel(0, last);
            }
            last = a;
        }
        assert!(l.windows[0].log.len() <= 3 + COMPACT_SLACK);
        l.settle(
            0,
            Reservation::Held(keep),
            7,
            &ProviderLimits::default(),
            0,
            0.0,
        );
        assert_eq!(l.state(0, 0.0).tokens, 8);
    }

    fn shared(rpm: Option<u32>, tpm: Option<u64>) -> Limits {
        let mut l = limited(rpm, tpm);
        l.share(0, 0.5).unwrap();
        l
    }

    #[test]
    fn a_shared_window_admits_only_within_its_lease() {
        let mut l = shared(Some(100), None);
        assert_eq!(
            l.admits(0, 10, 0.0),
            Err(Rejection::LeaseSpent {
                kind: LimitKind::Requests,
                held: 0,
                needed: 1,
                retry_in_s: 0.5
            }),
            "no lease yet"
        );
        l.grant(0, LimitKind::Requests, 7, 2, 30.0, 0.0).unwrap();
        for t in [0.0, 1.0] {
            l.admits(0, 10, t).unwrap();
            l.reserve(0, 10, t);
        }
        assert!(matches!(
            l.admits(0, 10, 2.0),
            Err(Rejection::LeaseSpent { held: 0, .. })
        ));
        assert_eq!(l.state(0, 2.0).requests, 2, "the local log counts them too");
    }

    #[test]
    fn cancelled_and_reconciled_reservations_go_back_to_their_grant() {
        let mut l = shared(Some(100), Some(10_000));
        l.grant(0, LimitKind::Requests, 1, 5, 30.0, 0.0).unwrap();
        l.grant(0, LimitKind::Tokens, 2, 1000, 30.0, 0.0).unwrap();
        let a = l.reserve(0, 300, 0.0);
        let b = l.reserve(0, 300, 0.0);
        l.cancel(0, a);
        l.settle(
            0,
            Reservation::Held(b),
            100,
            &ProviderLimits::default(),
            0,
            0.0,
        );
        assert_eq!(
            l.take_returns(0, 0.0).unwrap(),
            (vec![(1, 1)], vec![(2, 500)]),
            "a's request and tokens, and b's 200 unused tokens"
        );
        let s = l.shared_state(0, 0.0).unwrap();
        assert_eq!((s.requests.available, s.tokens.available), (3, 400));
        assert_eq!(l.unshare(0), (vec![(1, 3)], vec![(2, 400)]));
        assert_eq!(l.shared_state(0, 0.0), None);
    }

    #[test]
    fn an_outage_enforces_the_share_on_the_local_log_and_charges_it_later() {
        let mut l = shared(Some(10), None);
        l.grant(0, LimitKind::Requests, 1, 4, 30.0, 0.0).unwrap();
        for _ in 0..3 {
            l.reserve(0, 1, 0.0);
        }
        let share = RateLimits {
            rpm: Some(5),
            tpm: None,
        };
        assert_eq!(l.fall_back(0, share).unwrap(), (vec![(1, 1)], vec![]));
        l.reserve(0, 1, 1.0);
        l.reserve(0, 1, 1.0);
        assert!(
            matches!(
                l.admits(0, 1, 1.0),
                Err(Rejection::RequestLimit {
                    used: 5,
                    limit: 5,
                    ..
                })
            ),
            "the share counts what the lease admitted"
        );
        assert!(l.shared_state(0, 1.0).unwrap().unrecorded);
        assert_eq!(
            l.take_unrecorded(0, 1.0).unwrap(),
            (2, 2),
            "only the two admitted on the share"
        );
        assert_eq!(l.take_unrecorded(0, 1.0).unwrap(), (0, 0), "charged once");
        l.recover(0).unwrap();
        assert!(
            matches!(l.admits(0, 1, 1.0), Err(Rejection::LeaseSpent { .. })),
            "back on leases: the released one is gone"
        );
        assert!(l
            .fall_back(
                0,
                RateLimits {
                    rpm: Some(0),
                    tpm: None
                }
            )
            .is_err());
        assert!(l.grant(0, LimitKind::Requests, 0, 1, 1.0, 1.0).is_err());
    }

    #[test]
    fn the_window_length_is_a_parameter() {
        let mut l = limited(Some(1), None);
        l.set_window(2.0).unwrap();
        l.reserve(0, 1, 0.0);
        assert!(matches!(
            l.admits(0, 1, 1.0),
            Err(Rejection::RequestLimit { retry_in_s, .. }) if retry_in_s == 1.0
        ));
        assert_eq!(l.admits(0, 1, 2.0), Ok(()));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_WINDOW_S * 2.0] {
            assert!(l
                .set_window(bad)
                .unwrap_err()
                .to_string()
                .contains("window"));
        }
        assert!(l.take_returns(0, 0.0).is_err(), "not shared");
    }

    #[test]
    fn limits_are_range_checked() {
        let bad = RateLimits {
            rpm: Some(0),
            tpm: None,
        };
        assert!(bad.validate().unwrap_err().to_string().contains("rpm"));
        let bad = RateLimits {
            rpm: None,
            tpm: Some(MAX_TPM + 1),
        };
        assert!(bad.validate().unwrap_err().to_string().contains("tpm"));
    }
}
