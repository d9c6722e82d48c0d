//! Session affinity: which slot each conversation is bound to.
//!
//! A [`SessionMap`] maps the keyed hash of a session id ([`crate::hash::
//! session_key`]; the raw id is never kept) to the slot its last selection
//! went to. Entries expire after `ttl_s` seconds without a selection (idle
//! time on the core's clock) and at most `max_sessions` are held: the least
//! recently used is evicted first, so memory stays bounded whatever ids
//! callers send. The entries form a doubly linked list in recency order
//! inside one vector (O(1) lookup, touch, bind and eviction); since every
//! entry has the same TTL, the expired ones are always at the old end.
//!
//! A binding holds no rule: whether the bound slot may be kept is the
//! table's one eligibility check (see `table/affinity.rs`).

use rustc_hash::FxHashMap;

use crate::error::CoreError;

/// Seconds a session is kept without a selection, by default (one hour).
pub const DEFAULT_SESSION_TTL_S: f64 = 3600.0;
/// The longest TTL accepted (30 days).
pub const MAX_SESSION_TTL_S: f64 = 30.0 * 86_400.0;
/// Sessions held at most, by default.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
/// The largest `max_sessions` accepted.
pub const MAX_SESSIONS: usize = 10_000_000;

/// The keyed hash of a session id.
pub type SessionKey = u128;

const NIL: u32 = u32::MAX;

/// How long sessions live and how many are held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionConfig {
    pub ttl_s: f64,
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            ttl_s: DEFAULT_SESSION_TTL_S,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

impl SessionConfig {
    /// A validated configuration: `ttl_s` finite, > 0 and at most
    /// [`MAX_SESSION_TTL_S`]; `max_sessions` from 1 to [`MAX_SESSIONS`].
    pub fn new(ttl_s: f64, max_sessions: u64) -> Result<Self, CoreError> {
        if !(ttl_s.is_finite() && ttl_s > 0.0 && ttl_s <= MAX_SESSION_TTL_S) {
            return Err(CoreError::invalid(
                "session_ttl",
                format!("{ttl_s} (seconds: finite, > 0, at most {MAX_SESSION_TTL_S})"),
            ));
        }
        if !(1..=MAX_SESSIONS as u64).contains(&max_sessions) {
            return Err(CoreError::invalid(
                "max_sessions",
                format!("{max_sessions} (from 1 to {MAX_SESSIONS})"),
            ));
        }
        Ok(SessionConfig {
            ttl_s,
            max_sessions: max_sessions as usize,
        })
    }
}

/// What is kept of one session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Binding {
    pub slot: u32,
    /// The slot's generation when bound: a binding never outlives its model.
    pub generation: u32,
    /// Core-clock time the session was bound to this slot.
    pub bound_at: f64,
    /// Core-clock time of the session's latest selection.
    pub last_used: f64,
    /// The shared state's version of this binding (0: never shared).
    pub version: u64,
}

/// What changed in a session since the shared state last took the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only used again: its TTL runs from now.
    Touched,
    /// Bound here for the first time (another worker's binding wins).
    Bound,
    /// Moved to another slot (it replaces every worker's binding).
    Moved,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    key: SessionKey,
    binding: Binding,
    /// Towards the most recently used end.
    newer: u32,
    /// Towards the least recently used end.
    older: u32,
    change: Option<Change>,
}

/// Bound sessions in recency order, with an LRU bound and an idle TTL.
#[derive(Debug, Clone)]
pub struct SessionMap {
    config: SessionConfig,
    secret: u64,
    index: FxHashMap<SessionKey, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    /// Whether changes are recorded (for the shared state's sync).
    sharing: bool,
    /// Sessions whose `change` is set (a key may repeat, or be stale after
    /// an eviction; compacted to within twice the live count).
    changed: Vec<SessionKey>,
    /// Sessions evicted by the `max_sessions` bound since creation.
    evicted: u64,
}

impl SessionMap {
    /// An empty map whose ids are hashed with `secret`.
    pub fn new(config: SessionConfig, secret: u64) -> Self {
        SessionMap {
            config,
            secret,
            index: FxHashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            sharing: false,
            changed: Vec::new(),
            evicted: 0,
        }
    }

    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Apply a new TTL and bound; the least recently used sessions beyond
    /// the new bound are evicted now.
    pub fn configure(&mut self, config: SessionConfig) {
        self.config = config;
        while self.index.len() > config.max_sessions {
            self.evict_oldest();
        }
    }

    /// The key of a session id under this map's secret.
    pub fn key_of(&self, id: &str) -> SessionKey {
        crate::hash::session_key(self.secret, id)
    }

    /// Hash ids with `secret` from now on (workers sharing sessions agree
    /// on one); every session bound under the old secret is forgotten.
    pub fn set_secret(&mut self, secret: u64) {
        if secret != self.secret {
            let sharing = self.sharing;
            *self = SessionMap::new(self.config, secret);
            self.sharing = sharing;
        }
    }

    /// Record every change from now on, for [`SessionMap::take_changes`].
    pub fn start_sharing(&mut self) {
        self.sharing = true;
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Sessions evicted because `max_sessions` were held.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Entries allocated (live or free): never more than `max_sessions`
    /// since the last `configure` that shrank it.
    pub fn allocated(&self) -> usize {
        self.nodes.len()
    }

    /// The live binding of `key` at `now`, changing nothing.
    pub fn get(&self, key: SessionKey, now: f64) -> Option<Binding> {
        let at = *self.index.get(&key)?;
        let binding = self.nodes[at as usize].binding;
        self.live(&binding, now).then_some(binding)
    }

    /// Whether `binding` is within its TTL at `now`. Compared as
    /// `now <= last_used + ttl` (not `now - last_used <= ttl`): a clock
    /// advanced by the TTL from the last use reads exactly that sum, so the
    /// boundary does not depend on rounding the clock's reading.
    fn live(&self, binding: &Binding, now: f64) -> bool {
        now <= binding.last_used + self.config.ttl_s
    }

    /// Drop sessions idle for longer than the TTL (all at the old end).
    pub fn expire(&mut self, now: f64) {
        while self.oldest != NIL {
            let node = &self.nodes[self.oldest as usize];
            if self.live(&node.binding, now) {
                break;
            }
            let key = node.key;
            self.remove(key);
        }
    }

    /// The session was selected again on its bound slot: it becomes the most
    /// recently used and its TTL runs from `now`.
    pub fn touch(&mut self, key: SessionKey, now: f64) {
        if let Some(&at) = self.index.get(&key) {
            self.nodes[at as usize].binding.last_used = now;
            self.mark(at, Change::Touched);
            self.make_newest(at);
        }
    }

    /// Bind `key` to `slot` (of `generation`) at `now`: a new session, or
    /// one that moves. Evicts the least recently used session when full.
    pub fn bind(&mut self, key: SessionKey, slot: u32, generation: u32, now: f64) {
        let binding = Binding {
            slot,
            generation,
            bound_at: now,
            last_used: now,
            version: 0,
        };
        match self.index.get(&key).copied() {
            Some(at) => {
                let node = &mut self.nodes[at as usize];
                let moved = (node.binding.slot, node.binding.generation) != (slot, generation);
                node.binding = Binding {
                    version: node.binding.version,
                    bound_at: if moved { now } else { node.binding.bound_at },
                    ..binding
                };
                self.mark(
                    at,
                    if moved {
                        Change::Moved
                    } else {
                        Change::Touched
                    },
                );
                self.make_newest(at);
            }
            None => {
                let at = self.insert(key, binding);
                self.mark(at, Change::Bound);
            }
        }
    }

    /// Apply another worker's binding (or the shared state's verdict on one
    /// of ours) of `version`: a newer version replaces what is held, unless
    /// the session changed here since the changes were taken (that change
    /// is sent next and settles it). A session first seen this way counts
    /// its TTL from `now`.
    pub fn apply_shared(
        &mut self,
        key: SessionKey,
        slot: u32,
        generation: u32,
        version: u64,
        now: f64,
    ) {
        match self.index.get(&key).copied() {
            Some(at) => {
                let node = &mut self.nodes[at as usize];
                if node.change >= Some(Change::Bound) || node.binding.version >= version {
                    return;
                }
                if (node.binding.slot, node.binding.generation) != (slot, generation) {
                    node.binding.bound_at = now;
                }
                node.binding.slot = slot;
                node.binding.generation = generation;
                node.binding.version = version;
            }
            None => {
                self.insert(
                    key,
                    Binding {
                        slot,
                        generation,
                        bound_at: now,
                        last_used: now,
                        version,
                    },
                );
            }
        }
    }

    /// Drop every session bound to `slot` (its model was unregistered).
    pub fn remove_slot(&mut self, slot: u32) {
        let keys: Vec<SessionKey> = self
            .index
            .iter()
            .filter(|(_, &at)| self.nodes[at as usize].binding.slot == slot)
            .map(|(&key, _)| key)
            .collect();
        for key in keys {
            self.remove(key);
        }
    }

    /// The sessions that changed since the last call, with their binding
    /// and change, oldest change first; their changes are cleared.
    pub fn take_changes(&mut self) -> Vec<(SessionKey, Binding, Change)> {
        let mut out = Vec::with_capacity(self.changed.len());
        for key in std::mem::take(&mut self.changed) {
            if let Some(&at) = self.index.get(&key) {
                let node = &mut self.nodes[at as usize];
                if let Some(change) = node.change.take() {
                    out.push((key, node.binding, change));
                }
            }
        }
        out
    }

    fn mark(&mut self, at: u32, change: Change) {
        if !self.sharing {
            return;
        }
        let node = &mut self.nodes[at as usize];
        if node.change.is_none() {
            self.changed.push(node.key);
        }
        node.change = node.change.max(Some(change));
        if self.changed.len() > 2 * self.index.len() + 1024 {
            let (index, nodes) = (&self.index, &self.nodes);
            self.changed.retain(|key| {
                index
                    .get(key)
                    .is_some_and(|&at| nodes[at as usize].change.is_some())
            });
            self.changed.sort_unstable();
            self.changed.dedup();
        }
    }

    fn insert(&mut self, key: SessionKey, binding: Binding) -> u32 {
        if self.index.len() >= self.config.max_sessions {
            self.evict_oldest();
        }
        let node = Node {
            key,
            binding,
            newer: NIL,
            older: NIL,
            change: None,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.nodes[at as usize] = node;
                at
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.index.insert(key, at);
        self.link_newest(at);
        at
    }

    fn evict_oldest(&mut self) {
        if self.oldest != NIL {
            let key = self.nodes[self.oldest as usize].key;
            self.remove(key);
            self.evicted += 1;
        }
    }

    fn remove(&mut self, key: SessionKey) {
        if let Some(at) = self.index.remove(&key) {
            self.unlink(at);
            self.nodes[at as usize].change = None;
            self.free.push(at);
            if self.index.is_empty() {
                // Nothing live: give the memory of a burst back.
                self.nodes.clear();
                self.free.clear();
                self.changed.clear();
            }
        }
    }

    fn make_newest(&mut self, at: u32) {
        if self.newest != at {
            self.unlink(at);
            self.link_newest(at);
        }
    }

    fn link_newest(&mut self, at: u32) {
        let old_newest = self.newest;
        {
            let node = &mut self.nodes[at as usize];
            node.older = old_newest;
            node.newer = NIL;
        }
        if old_newest != NIL {
            self.nodes[old_newest as usize].newer = at;
        } else {
            self.oldest = at;
        }
        self.newest = at;
    }

    fn unlink(&mut self, at: u32) {
        let Node { newer, older, .. } = self.nodes[at as usize];
        if newer != NIL {
            self.nodes[newer as usize].older = older;
        } else {
            self.newest = older;
        }
        if older != NIL {
            self.nodes[older as usize].newer = newer;
        } else {
            self.oldest = newer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ttl: f64, max: u64) -> SessionMap {
        let mut m = SessionMap::new(SessionConfig::new(ttl, max).unwrap(), 7);
        m.start_sharing();
        m
    }

    #[test]
    fn bad_settings_name_the_field() {
        for ttl in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_SESSION_TTL_S * 2.0] {
            let err = SessionConfig::new(ttl, 10).unwrap_err();
            assert!(err.to_string().starts_with("invalid session_ttl"), "{err}");
        }
        for max in [0, MAX_SESSIONS as u64 + 1] {
            let err = SessionConfig::new(60.0, max).unwrap_err();
            assert!(err.to_string().starts_with("invalid max_sessions"), "{err}");
        }
    }

    #[test]
    fn a_session_expires_after_its_idle_ttl() {
        let mut m = map(10.0, 10);
        let k = m.key_of("conversation-1");
        m.bind(k, 3, 0, 0.0);
        m.touch(k, 8.0);
        assert_eq!(m.get(k, 18.0).map(|b| b.slot), Some(3));
        assert_eq!(m.get(k, 18.5), None);
        m.expire(18.5);
        assert!(m.is_empty());
    }

    #[test]
    fn the_least_recently_used_is_evicted_first() {
        let mut m = map(100.0, 2);
        let (a, b, c) = (m.key_of("a"), m.key_of("b"), m.key_of("c"));
        m.bind(a, 0, 0, 0.0);
        m.bind(b, 1, 0, 1.0);
        m.touch(a, 2.0);
        m.bind(c, 2, 0, 3.0);
        assert!(m.get(b, 3.0).is_none(), "b was the least recently used");
        assert!(m.get(a, 3.0).is_some() && m.get(c, 3.0).is_some());
        assert_eq!(m.evicted(), 1);
    }

    #[test]
    fn a_move_is_a_change_that_outranks_a_touch_and_the_newest_version_wins() {
        let mut m = map(100.0, 10);
        let k = m.key_of("s");
        m.bind(k, 0, 0, 0.0);
        m.touch(k, 1.0);
        assert_eq!(m.take_changes()[0].2, Change::Bound);
        m.touch(k, 2.0);
        m.bind(k, 1, 0, 3.0);
        let changes = m.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].2, Change::Moved);
        assert_eq!(changes[0].1.bound_at, 3.0);
        m.apply_shared(k, 2, 0, 5, 4.0);
        assert_eq!(m.get(k, 4.0).unwrap().slot, 2);
        m.apply_shared(k, 0, 0, 4, 4.0);
        assert_eq!(
            m.get(k, 4.0).unwrap().slot,
            2,
            "an older version changes nothing"
        );
        m.bind(k, 1, 0, 5.0);
        m.apply_shared(k, 2, 0, 9, 5.0);
        assert_eq!(
            m.get(k, 5.0).unwrap().slot,
            1,
            "a move not yet sent is not overwritten"
        );
    }

    #[test]
    fn removing_a_slot_drops_its_sessions_and_a_new_secret_forgets_all() {
        let mut m = map(100.0, 10);
        let (a, b) = (m.key_of("a"), m.key_of("b"));
        m.bind(a, 0, 0, 0.0);
        m.bind(b, 1, 0, 0.0);
        m.remove_slot(0);
        assert!(m.get(a, 0.0).is_none() && m.get(b, 0.0).is_some());
        let before = m.key_of("b");
        m.set_secret(8);
        assert!(m.is_empty());
        assert_ne!(m.key_of("b"), before);
    }
}
