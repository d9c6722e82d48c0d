//! Selection tickets: one per selection whose outcome is still owed.
//!
//! Tickets are numbered in issue order and issued at non-decreasing times.
//! They live in a hash map by number (issuing, reporting and cancelling are
//! O(1)) and their numbers in a queue in issue order, so expiry only ever
//! looks at the oldest end. Reported tickets leave stale numbers in the
//! queue; the queue is compacted once those outnumber the live ones, so its
//! length stays within twice the live count (plus a constant) at amortised
//! O(1) per ticket, and the cost of a selection does not depend on how many
//! tickets are outstanding or were ever issued.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::budgets::Hold;

/// The most tickets one table keeps outstanding. Issuing more expires the
/// oldest early, as if its pending timeout had passed, so memory stays
/// bounded whatever callers do. Only live tickets count: any number of
/// selections reported at once never expires an older one still in flight.
pub const MAX_OUTSTANDING_TICKETS: usize = 1 << 20;

/// Stale numbers tolerated in the queue beyond the live count before it is
/// compacted (so small stores never compact).
const COMPACT_SLACK: usize = 1024;

/// One outstanding selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket {
    pub slot: u32,
    /// The slot's generation when issued: a ticket of an unregistered model
    /// never matches the model registered in that slot later.
    pub generation: u32,
    pub issued_at: f64,
    /// The rate-limit reservation it holds (see `limits`); 0 for none.
    pub reservation: u64,
    /// The budget hold it carries (see `budgets`).
    pub budget_hold: Hold,
}

/// Outstanding tickets by number, and their numbers in issue order.
#[derive(Debug)]
pub struct TicketStore {
    /// Number of the next ticket issued.
    next: u64,
    live: FxHashMap<u64, Ticket>,
    /// Numbers in issue order; some may be stale (already taken).
    order: VecDeque<u64>,
}

impl Default for TicketStore {
    fn default() -> Self {
        TicketStore {
            next: 1,
            live: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }
}

impl TicketStore {
    /// Issue a ticket; returns its number (never 0). When
    /// [`MAX_OUTSTANDING_TICKETS`] are live, the oldest live one is expired
    /// first and handed to `on_expired` with its number.
    pub fn issue(&mut self, ticket: Ticket, mut on_expired: impl FnMut(u64, &Ticket)) -> u64 {
        while self.live.len() >= MAX_OUTSTANDING_TICKETS {
            let Some(number) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.live.remove(&number) {
                on_expired(number, &old);
            }
        }
        let number = self.next;
        self.next += 1;
        self.live.insert(number, ticket);
        self.order.push_back(number);
        number
    }

    /// The outstanding ticket `number`, if any.
    pub fn get(&self, number: u64) -> Option<&Ticket> {
        self.live.get(&number)
    }

    /// Remove ticket `number` if `accept` agrees it is the caller's.
    pub fn take_if(&mut self, number: u64, accept: impl FnOnce(&Ticket) -> bool) -> Option<Ticket> {
        if !self.live.get(&number).is_some_and(accept) {
            return None;
        }
        let ticket = self.live.remove(&number);
        self.drop_stale();
        ticket
    }

    /// Expire tickets issued more than `timeout` before `now`, oldest
    /// first, handing each (with its number) to `on_expired`. Amortised O(1)
    /// per ticket.
    pub fn expire(&mut self, now: f64, timeout: f64, mut on_expired: impl FnMut(u64, &Ticket)) {
        while let Some(&number) = self.order.front() {
            match self.live.get(&number) {
                Some(t) if now - t.issued_at > timeout => {
                    let t = *t;
                    self.order.pop_front();
                    self.live.remove(&number);
                    on_expired(number, &t);
                }
                Some(_) => break,
                None => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// Every outstanding ticket with its number, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Ticket)> {
        self.live.iter().map(|(&number, t)| (number, t))
    }

    /// Number of outstanding tickets.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Drop stale numbers at the oldest end, and compact the queue once
    /// stale numbers outnumber live ones (each compaction is paid for by
    /// the takes that made its stale numbers).
    fn drop_stale(&mut self) {
        while self
            .order
            .front()
            .is_some_and(|n| !self.live.contains_key(n))
        {
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.live.len() + COMPACT_SLACK {
            let live = &self.live;
            self.order.retain(|n| live.contains_key(n));
        }
        if self.live.is_empty() && self.order.capacity() > COMPACT_SLACK {
            self.order.shrink_to(COMPACT_SLACK);
            self.live.shrink_to(COMPACT_SLACK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(slot: u32, issued_at: f64) -> Ticket {
        Ticket {
            slot,
            generation: 0,
            issued_at,
            reservation: 0,
            budget_hold: Hold::default(),
        }
    }

    #[test]
    fn tickets_are_taken_once_and_expire_oldest_first() {
        let mut store = TicketStore::default();
        let a = store.issue(at(0, 0.0), |_, _| unreachable!());
        let b = store.issue(at(1, 5.0), |_, _| unreachable!());
        assert_eq!((a, b), (1, 2));
        assert!(store.take_if(b, |t| t.slot == 0).is_none());
        assert_eq!(store.take_if(b, |t| t.slot == 1), Some(at(1, 5.0)));
        assert!(store.take_if(b, |_| true).is_none());
        let mut expired = Vec::new();
        store.expire(10.0, 9.0, |_, t| expired.push(t.slot));
        assert_eq!(expired, vec![0]);
        assert!(store.is_empty());
        assert!(store.get(a).is_none());
        assert_eq!(store.issue(at(2, 11.0), |_, _| unreachable!()), 3);
    }

    #[test]
    fn the_ring_is_bounded() {
        let mut store = TicketStore::default();
        let mut expired = 0;
        for _ in 0..MAX_OUTSTANDING_TICKETS + 10 {
            store.issue(at(0, 0.0), |_, _| expired += 1);
        }
        assert_eq!(expired, 10);
        assert_eq!(store.len(), MAX_OUTSTANDING_TICKETS);
    }

    #[test]
    fn only_live_tickets_count_towards_the_bound() {
        let mut store = TicketStore::default();
        let long = store.issue(at(0, 0.0), |_, _| unreachable!());
        for _ in 0..MAX_OUTSTANDING_TICKETS + 10 {
            let quick = store.issue(at(1, 0.0), |_, _| unreachable!());
            assert!(store.take_if(quick, |_| true).is_some());
        }
        assert_eq!(store.len(), 1);
        assert!(
            store.order.len() <= 2 + COMPACT_SLACK,
            "stale numbers are compacted"
        );
        assert_eq!(store.take_if(long, |t| t.slot == 0), Some(at(0, 0.0)));
    }
}
