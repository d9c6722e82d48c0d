//! The table's side of rate limits shared across workers: the lease
//! thread's calls (see [`crate::leases`] and [`crate::limits`]).

use super::Table;
use crate::error::{non_negative, CoreError};
use crate::limits::{LimitKind, RateLimits, Returns, SharedWindowState};

impl Table {
    /// The rate-limit window's length, in seconds.
    pub fn rate_limit_window(&self) -> f64 {
        self.limits.window()
    }

    /// Change the rate-limit window's length (every slot's).
    pub fn set_rate_limit_window(&mut self, seconds: f64) -> Result<(), CoreError> {
        self.limits.set_window(seconds)
    }

    /// Enforce `slot`'s limits across workers: it admits only within the
    /// leases the lease thread grants (`top_up_in_s`: its interval).
    pub fn share_limits(&mut self, slot: u32, top_up_in_s: f64) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        self.limits.share(i, top_up_in_s)
    }

    /// Stop sharing `slot`'s limits; what its leases hold or owe.
    pub fn unshare_limits(&mut self, slot: u32) -> Result<Returns, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.limits.unshare(i))
    }

    /// Add a grant of `amount` to `slot`'s lease of `kind`, usable for
    /// `expires_in_s` from now.
    pub fn grant_lease(
        &mut self,
        slot: u32,
        kind: LimitKind,
        id: u64,
        amount: u64,
        expires_in_s: f64,
    ) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        let now = self.now();
        let expires_at = now + non_negative("expires_in", expires_in_s)?;
        self.limits.grant(i, kind, id, amount, expires_at, now)
    }

    /// What `slot` owes back to the shared counters, emptied.
    pub fn take_lease_returns(&mut self, slot: u32) -> Result<Returns, CoreError> {
        let i = self.check_slot(slot)?;
        let now = self.now();
        self.limits.take_returns(i, now)
    }

    /// The counters are unreachable: enforce `share` locally on `slot`;
    /// what its leases held or owed, to return once they are back.
    pub fn fall_back_limits(&mut self, slot: u32, share: RateLimits) -> Result<Returns, CoreError> {
        let i = self.check_slot(slot)?;
        self.limits.fall_back(i, share)
    }

    /// The counters are back: `slot` admits within its leases again.
    pub fn recover_limits(&mut self, slot: u32) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        self.limits.recover(i)
    }

    /// Requests and tokens `slot` admitted in the window that the counters
    /// do not know of, marked charged.
    pub fn take_unrecorded(&mut self, slot: u32) -> Result<(u32, u64), CoreError> {
        let i = self.check_slot(slot)?;
        let now = self.now();
        self.limits.take_unrecorded(i, now)
    }

    /// `slot`'s leases, `None` when its limits are not shared.
    pub fn shared_limits(&self, slot: u32) -> Result<Option<SharedWindowState>, CoreError> {
        let i = self.check_slot(slot)?;
        Ok(self.limits.shared_state(i, self.now()))
    }
}
