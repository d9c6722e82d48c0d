//! Session affinity in the table. A request with a session is sent to the
//! slot its session is bound to when that slot passes the request's one
//! eligibility check ([`Table::check`]: constraints, rate limits, breaker,
//! half-open probes), so affinity never returns a model that is unhealthy,
//! full or excluded; otherwise the selection is a fresh one and the session
//! is re-bound to its pick. The map itself is [`crate::sessions`].

use crate::error::CoreError;
use crate::sessions::{Binding, Change, SessionConfig, SessionKey, SessionMap};
use crate::spec::{Constraints, Rejection};

use super::Table;

/// What a request's session means for its selection.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionVerdict {
    /// Kept on `slot`, bound `bound_for_s` seconds ago.
    Kept { slot: u32, bound_for_s: f64 },
    /// Bound to `slot`, which fails the request (`why`): it moves.
    Moved { slot: u32, why: Rejection },
    /// Not bound: first seen, expired, evicted, or its model was unregistered.
    New,
}

impl Table {
    pub fn sessions(&self) -> &SessionMap {
        &self.sessions
    }

    /// Set the session TTL and bound (the least recently used sessions
    /// beyond a smaller bound are evicted now).
    pub fn configure_sessions(&mut self, config: SessionConfig) {
        self.sessions.configure(config);
    }

    /// Hash session ids with `secret` from now on (every worker of a shared
    /// state uses the same); sessions bound so far are forgotten.
    pub fn set_session_secret(&mut self, secret: u64) {
        self.sessions.set_secret(secret);
    }

    /// The key of a session id in this table.
    pub fn session_key(&self, id: &str) -> SessionKey {
        self.sessions.key_of(id)
    }

    /// The verdict on `c`'s session at `now` (`None`: the request has none).
    pub fn session_verdict(&self, c: &Constraints, now: f64) -> Option<SessionVerdict> {
        let key = c.session?;
        let Some(binding) = self.live_binding(key, now) else {
            return Some(SessionVerdict::New);
        };
        let slot = binding.slot;
        Some(match self.check(slot as usize, c, now) {
            Ok(_) => SessionVerdict::Kept {
                slot,
                bound_for_s: (now - binding.bound_at).max(0.0),
            },
            Err(why) => SessionVerdict::Moved { slot, why },
        })
    }

    /// A sentence for an explanation: `session: kept on m (bound 12 s ago)`.
    pub fn describe_session(&self, verdict: &SessionVerdict) -> String {
        let name = |slot: u32| self.specs[slot as usize].name.as_str();
        match verdict {
            SessionVerdict::Kept { slot, bound_for_s } => {
                format!(
                    "session: kept on {} (bound {bound_for_s:.0} s ago)",
                    name(*slot)
                )
            }
            SessionVerdict::Moved { slot, why } => {
                format!("session: moved from {} ({})", name(*slot), why.describe())
            }
            SessionVerdict::New => "session: new, bound to the pick".to_owned(),
        }
    }

    /// The slot `c`'s session keeps, if it is bound to one that passes `c`.
    #[inline]
    pub(super) fn kept_slot(&self, c: &Constraints, now: f64) -> Option<usize> {
        let binding = self.live_binding(c.session?, now)?;
        let i = binding.slot as usize;
        self.check(i, c, now).is_ok().then_some(i)
    }

    /// `c`'s session after a selection of `slot` at `now`: kept (its TTL
    /// restarts), or bound to `slot`.
    #[inline]
    pub(super) fn settle_session(&mut self, c: &Constraints, slot: usize, now: f64) {
        if let Some(key) = c.session {
            self.sessions
                .bind(key, slot as u32, self.generation[slot], now);
        }
    }

    /// Bind `c`'s session to `slot` after a selection made outside the table
    /// (the contextual router's).
    pub fn settle_session_on(
        &mut self,
        c: &Constraints,
        slot: u32,
        now: f64,
    ) -> Result<(), CoreError> {
        let i = self.check_slot(slot)?;
        self.settle_session(c, i, now);
        Ok(())
    }

    /// The slot `c`'s session keeps at `now` (for the contextual router).
    pub fn session_slot(&self, c: &Constraints, now: f64) -> Option<u32> {
        self.kept_slot(c, now).map(|i| i as u32)
    }

    /// A binding that is live and of the model now in its slot.
    fn live_binding(&self, key: SessionKey, now: f64) -> Option<Binding> {
        self.sessions
            .get(key, now)
            .filter(|b| self.is_active(b.slot) && self.generation[b.slot as usize] == b.generation)
    }

    // ----- sharing across workers ---------------------------------------

    /// Record session changes from now on (the shared state calls this once).
    pub fn start_sharing_sessions(&mut self) {
        self.sessions.start_sharing();
    }

    /// The sessions bound, moved or used here since the last call, by model
    /// name: `(key, model, change)`; sessions of an unregistered model are
    /// left out.
    pub fn take_session_changes(&mut self) -> Vec<(SessionKey, String, Change)> {
        self.sessions
            .take_changes()
            .into_iter()
            .filter(|(_, b, _)| {
                self.is_active(b.slot) && self.generation[b.slot as usize] == b.generation
            })
            .map(|(key, b, change)| (key, self.specs[b.slot as usize].name.clone(), change))
            .collect()
    }

    /// Apply the shared binding of `key` to the model `name` at `version`
    /// (see [`SessionMap::apply_shared`]); a model not registered here
    /// changes nothing (this worker's own binding, if any, stays).
    pub fn apply_shared_session(&mut self, key: SessionKey, name: &str, version: u64) {
        if let Some(slot) = self.slot_of(name) {
            let now = self.now();
            let generation = self.generation[slot as usize];
            self.sessions
                .apply_shared(key, slot, generation, version, now);
        }
    }
}
