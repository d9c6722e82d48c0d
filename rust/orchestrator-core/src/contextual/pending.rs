//! Decisions waiting for delayed quality feedback.
//!
//! A fixed ring of slots, each keeping the decision's model and a copy of its
//! features in a buffer that is reused when the slot comes round again, so
//! steady-state recording allocates nothing. An id is forgotten when its
//! feedback arrives, when it is older than the time to live, or when the ring
//! wraps over its slot (the oldest pending decision is dropped first).

use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use crate::error::CoreError;
use crate::features::Features;

#[derive(Debug, Default, Clone)]
struct Slot {
    request_id: u64,
    model: usize,
    expires_at: f64,
    features: Features,
}

/// The next request id of the process. Ids are unique across routers, not
/// per router: the id of another router's decision (another registry's, or
/// one from before a state load replaced this router) is never also one of
/// this router's, so misdirected feedback is `UnknownRequest` instead of
/// teaching the wrong decision. (Thompson draws count decisions separately.)
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The pending decisions of one router.
#[derive(Debug, Clone)]
pub struct Pending {
    slots: Vec<Slot>,
    by_id: FxHashMap<u64, usize>,
    next_slot: usize,
    ttl_s: f64,
}

/// What a request id was decided with, handed back when feedback arrives.
pub struct Claimed<'a> {
    pub model: usize,
    pub features: &'a Features,
}

impl Pending {
    pub fn new(capacity: usize, ttl_s: f64) -> Self {
        Pending {
            slots: vec![Slot::default(); capacity],
            by_id: FxHashMap::default(),
            next_slot: 0,
            ttl_s,
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Record a decision made at `now` (seconds); returns its request id.
    pub fn record(&mut self, model: usize, features: &Features, now: f64) -> u64 {
        let request_id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
        let at = self.next_slot;
        self.next_slot = (at + 1) % self.slots.len();
        let slot = &mut self.slots[at];
        if slot.request_id != 0 {
            self.by_id.remove(&slot.request_id);
        }
        slot.request_id = request_id;
        slot.model = model;
        slot.expires_at = now + self.ttl_s;
        slot.features.copy_from(features);
        self.by_id.insert(request_id, at);
        request_id
    }

    /// Whether `request_id` is waiting for feedback and not expired at `now`.
    pub fn is_live(&self, request_id: u64, now: f64) -> bool {
        self.by_id
            .get(&request_id)
            .is_some_and(|&at| now <= self.slots[at].expires_at)
    }

    /// Take the decision of `request_id` at `now`, or
    /// [`CoreError::UnknownRequest`] when the id is unknown, already
    /// answered or expired.
    pub fn claim(&mut self, request_id: u64, now: f64) -> Result<Claimed<'_>, CoreError> {
        let Some(at) = self.by_id.remove(&request_id) else {
            return Err(CoreError::UnknownRequest {
                request_id,
                reason: "is unknown, was already reported, or was dropped to make room \
                         for newer decisions"
                    .to_owned(),
            });
        };
        let slot = &mut self.slots[at];
        slot.request_id = 0;
        if now > slot.expires_at {
            return Err(CoreError::UnknownRequest {
                request_id,
                reason: format!("has expired (feedback is accepted for {} s)", self.ttl_s),
            });
        }
        Ok(Claimed {
            model: slot.model,
            features: &slot.features,
        })
    }

    /// Forget the decisions made for `model` and move later models down one
    /// index (after the model is removed from the router).
    pub fn forget_model(&mut self, model: usize) {
        for slot in &mut self.slots {
            if slot.request_id == 0 {
                continue;
            }
            if slot.model == model {
                self.by_id.remove(&slot.request_id);
                slot.request_id = 0;
            } else if slot.model > model {
                slot.model -= 1;
            }
        }
    }
}
