//! Leases: a worker's local allowance of a counter many workers share.
//!
//! A shared counter has a capacity per period (a rate limit's requests or
//! tokens per window; a budget's micro-USD per period) held authoritatively
//! elsewhere (Redis, one Lua script: `orchestrator.models.shared_leases`).
//! A worker cannot ask it on every request without I/O on the hot path, so
//! it holds a [`Lease`]: a few *grants*, each a slice of the counter's
//! capacity that the counter recorded at the time it granted it, usable
//! until it `expires_at` (on the core's clock, no later than the grant
//! leaves the counter's period). The core admits a request only within what
//! the live grants still hold, and takes it from them oldest first.
//!
//! What a worker does not use goes back, **to the grant it came from**: a
//! cancelled reservation, a reservation reconciled below its estimate, and
//! the unused part of a grant that expired or was released are queued as
//! returns `(grant, amount)` that the lease thread gives back to the counter
//! (where that grant still counts). Returned units never go back into the
//! lease, so a unit is used at most once, only while its grant counts in the
//! counter's period, and the counter's count is exactly what was used once
//! every return is delivered. A reservation reconciled above its estimate
//! takes the difference from the live grants, or owes it (`debt`) to the
//! next grant.
//!
//! The bound this gives (with a counter that never grants more than its
//! capacity within one period): in any period, the units used by all
//! workers are at most the capacity plus what each worker still held, unused,
//! at the period's start: `capacity + slice × workers` when a worker tops its
//! lease up to at most one `slice`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CoreError;

/// The most grants a lease holds at once (a top-up beyond is refused).
pub const MAX_GRANTS: usize = 8;

/// One slice of the shared counter, as the counter recorded it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Grant {
    /// The counter's id of this grant (what a return names).
    id: u64,
    left: u64,
    expires_at: f64,
}

/// A worker's live grants of one shared counter and what it owes back.
#[derive(Debug)]
pub struct Lease {
    /// Oldest first.
    grants: VecDeque<Grant>,
    /// Units to give back to the counter, by grant id (merged per grant).
    returns: Vec<(u64, u64)>,
    /// Units used beyond what the grants held: taken from the next grants.
    debt: u64,
    /// What the grants hold (expired ones included until dropped), and the
    /// earliest expiry among them: the check's fast path.
    held: u64,
    next_expiry: f64,
    /// The largest amount refused for want of allowance since the last
    /// grant: a top-up covers at least this (a request larger than a slice).
    wanted: AtomicU64,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            grants: VecDeque::new(),
            returns: Vec::new(),
            debt: 0,
            held: 0,
            next_expiry: f64::INFINITY,
            wanted: AtomicU64::new(0),
        }
    }
}

impl Clone for Lease {
    fn clone(&self) -> Self {
        Lease {
            grants: self.grants.clone(),
            returns: self.returns.clone(),
            debt: self.debt,
            held: self.held,
            next_expiry: self.next_expiry,
            wanted: AtomicU64::new(self.wanted.load(Ordering::Relaxed)),
        }
    }
}

/// What a lease holds now, for the lease thread and for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseState {
    /// Units the live grants still hold, less the debt.
    pub available: u64,
    pub grants: usize,
    pub debt: u64,
    /// The largest request refused for want of allowance since the last grant.
    pub wanted: u64,
}

impl Lease {
    /// Units the live grants hold at `now`, less the debt.
    #[inline]
    pub fn available(&self, now: f64) -> u64 {
        let held = if now < self.next_expiry {
            self.held
        } else {
            self.grants
                .iter()
                .filter(|g| g.expires_at > now)
                .map(|g| g.left)
                .sum::<u64>()
        };
        held.saturating_sub(self.debt)
    }

    /// What the lease holds less its debt, and until when that stays what
    /// [`Self::available`] says (its earliest grant's expiry): a reading
    /// that stays true until the lease changes or that time comes.
    #[inline]
    pub fn steady(&self) -> (u64, f64) {
        (self.held.saturating_sub(self.debt), self.next_expiry)
    }

    /// Whether `amount` fits in the lease at `now`; a refusal is remembered
    /// (the next top-up covers it). Lock-free: checks run under a shared borrow.
    #[inline]
    pub fn admits(&self, amount: u64, now: f64) -> bool {
        if self.available(now) >= amount {
            return true;
        }
        self.wanted.fetch_max(amount, Ordering::Relaxed);
        false
    }

    /// Take `amount` from the live grants, oldest first (after
    /// [`Self::admits`] agreed); the id of the first grant it came from
    /// (0 when the lease held nothing: all of it is debt).
    pub fn take(&mut self, amount: u64, now: f64) -> u64 {
        self.expire(now);
        let mut rest = amount;
        let mut first = 0;
        for g in &mut self.grants {
            if rest == 0 {
                break;
            }
            let part = rest.min(g.left);
            if part > 0 && first == 0 {
                first = g.id;
            }
            g.left -= part;
            rest -= part;
        }
        self.held -= amount - rest;
        self.debt += rest;
        first
    }

    /// Give `amount` of a reservation that came from `grant` back to the
    /// counter (cancelled, or reconciled below its estimate).
    pub fn give_back(&mut self, grant: u64, amount: u64) {
        if amount == 0 {
            return;
        }
        match self.returns.iter_mut().find(|(id, _)| *id == grant) {
            Some((_, owed)) => *owed += amount,
            None => self.returns.push((grant, amount)),
        }
    }

    /// A reservation turned out larger by `amount` than reserved: take it
    /// from the live grants (or owe it to the next).
    pub fn charge(&mut self, amount: u64, now: f64) {
        self.take(amount, now);
    }

    /// Add a grant of `amount` (its debt paid first), usable until
    /// `expires_at` on the core's clock (`now`: the grants expired by then go).
    pub fn grant(
        &mut self,
        id: u64,
        amount: u64,
        expires_at: f64,
        now: f64,
    ) -> Result<(), CoreError> {
        self.expire(now);
        if id == 0 {
            return Err(CoreError::invalid("grant", "0 (grant ids start at 1)"));
        }
        if !expires_at.is_finite() {
            return Err(CoreError::invalid("expires_in", expires_at));
        }
        if self.grants.len() >= MAX_GRANTS {
            return Err(CoreError::invalid(
                "grant",
                format!("{id} (a lease holds at most {MAX_GRANTS} grants)"),
            ));
        }
        if self.grants.iter().any(|g| g.id == id) {
            return Err(CoreError::invalid("grant", format!("{id} (already held)")));
        }
        let paid = self.debt.min(amount);
        self.debt -= paid;
        self.grants.push_back(Grant {
            id,
            left: amount - paid,
            expires_at,
        });
        self.held += amount - paid;
        self.next_expiry = self.next_expiry_of_grants();
        self.wanted.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Drop the grants that expired by `now` (a grant's expiry may come
    /// before an older one's); their unused units go back.
    fn expire(&mut self, now: f64) {
        if now < self.next_expiry {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.grants.len());
        while let Some(g) = self.grants.pop_front() {
            if g.expires_at <= now {
                self.held -= g.left;
                self.give_back(g.id, g.left);
            } else {
                kept.push_back(g);
            }
        }
        self.grants = kept;
        self.next_expiry = self.next_expiry_of_grants();
    }

    fn next_expiry_of_grants(&self) -> f64 {
        self.grants
            .iter()
            .map(|g| g.expires_at)
            .fold(f64::INFINITY, f64::min)
    }

    /// Everything owed back to the counter as of `now` (expired grants'
    /// unused units included), emptied.
    pub fn take_returns(&mut self, now: f64) -> Vec<(u64, u64)> {
        self.expire(now);
        std::mem::take(&mut self.returns)
    }

    /// Give up every grant (closing, falling back, reconfigured): their
    /// unused units join the returns, which are taken. The debt stays.
    pub fn release(&mut self) -> Vec<(u64, u64)> {
        while let Some(g) = self.grants.pop_front() {
            self.give_back(g.id, g.left);
        }
        self.held = 0;
        self.next_expiry = f64::INFINITY;
        std::mem::take(&mut self.returns)
    }

    pub fn state(&self, now: f64) -> LeaseState {
        LeaseState {
            available: self.available(now),
            grants: self.grants.iter().filter(|g| g.expires_at > now).count(),
            debt: self.debt,
            wanted: self.wanted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_oldest_first_and_returns_to_the_grant_it_came_from() {
        let mut l = Lease::default();
        l.grant(1, 2, 10.0, 0.0).unwrap();
        l.grant(2, 5, 20.0, 0.0).unwrap();
        assert!(l.admits(7, 0.0) && !l.admits(8, 0.0));
        assert_eq!(l.state(0.0).wanted, 8, "the refusal is remembered");
        assert_eq!(l.take(3, 0.0), 1, "spans grants 1 and 2, from 1 first");
        l.give_back(1, 3);
        assert_eq!(
            l.available(0.0),
            4,
            "a returned unit never re-enters the lease"
        );
        assert_eq!(l.take_returns(0.0), vec![(1, 3)]);
        assert_eq!(l.available(15.0), 4, "grant 1 (empty) expired");
        assert_eq!(
            l.take_returns(20.0),
            vec![(2, 4)],
            "expired unused units go back"
        );
        assert_eq!(l.available(20.0), 0);
    }

    #[test]
    fn usage_beyond_the_lease_is_debt_paid_by_the_next_grant() {
        let mut l = Lease::default();
        l.grant(1, 10, 100.0, 0.0).unwrap();
        l.take(4, 0.0);
        l.charge(9, 0.0);
        assert_eq!(l.state(0.0).debt, 3);
        assert!(!l.admits(1, 0.0));
        l.grant(2, 5, 100.0, 0.0).unwrap();
        assert_eq!(l.available(0.0), 2);
        assert_eq!(l.state(0.0).wanted, 0, "a grant clears the refusal");
    }

    #[test]
    fn bad_grants_are_refused_by_name() {
        let mut l = Lease::default();
        assert!(l
            .grant(0, 1, 1.0, 0.0)
            .unwrap_err()
            .to_string()
            .contains("grant"));
        assert!(l.grant(1, 1, f64::NAN, 0.0).is_err());
        l.grant(1, 1, 1.0, 0.0).unwrap();
        assert!(l
            .grant(1, 1, 1.0, 0.0)
            .unwrap_err()
            .to_string()
            .contains("already"));
        for id in 2..=MAX_GRANTS as u64 {
            l.grant(id, 1, 1.0, 0.0).unwrap();
        }
        assert!(l.grant(99, 1, 1.0, 0.0).is_err());
        assert_eq!(l.release().len(), MAX_GRANTS);
    }
}
