//! Selection tickets: one per selection whose outcome is still owed.
//!
//! Tickets are numbered in issue order and issued at non-decreasing times,
//! so they live in a ring indexed by number: issuing, reporting and
//! cancelling are O(1), and expiry only ever looks at the oldest end, so the
//! cost of a selection does not depend on how many tickets are outstanding.

use std::collections::VecDeque;

/// The most tickets one table keeps outstanding. Issuing more expires the
/// oldest early, as if its pending timeout had passed, so memory stays
/// bounded (about 24 bytes a ticket) whatever callers do.
pub const MAX_OUTSTANDING_TICKETS: usize = 1 << 20;

/// One outstanding selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket {
    pub slot: u32,
    /// The slot's generation when issued: a ticket of an unregistered model
    /// never matches the model registered in that slot later.
    pub generation: u32,
    pub issued_at: f64,
}

/// Outstanding tickets in issue order; reported ones leave holes that are
/// dropped once they reach the oldest end.
#[derive(Debug)]
pub struct TicketStore {
    /// Number of the ticket at `ring[0]`.
    first: u64,
    ring: VecDeque<Option<Ticket>>,
    live: usize,
}

impl Default for TicketStore {
    fn default() -> Self {
        TicketStore {
            first: 1,
            ring: VecDeque::new(),
            live: 0,
        }
    }
}

impl TicketStore {
    /// Issue a ticket; returns its number (never 0). When the ring is full
    /// the oldest entry is expired first and handed to `on_expired`.
    pub fn issue(&mut self, ticket: Ticket, mut on_expired: impl FnMut(&Ticket)) -> u64 {
        while self.ring.len() >= MAX_OUTSTANDING_TICKETS {
            if let Some(Some(old)) = self.pop_front() {
                self.live -= 1;
                on_expired(&old);
            }
        }
        let number = self.first + self.ring.len() as u64;
        self.ring.push_back(Some(ticket));
        self.live += 1;
        number
    }

    /// The outstanding ticket `number`, if any.
    pub fn get(&self, number: u64) -> Option<&Ticket> {
        let index = usize::try_from(number.checked_sub(self.first)?).ok()?;
        self.ring.get(index)?.as_ref()
    }

    /// Remove ticket `number` if `accept` agrees it is the caller's.
    pub fn take_if(&mut self, number: u64, accept: impl FnOnce(&Ticket) -> bool) -> Option<Ticket> {
        let index = usize::try_from(number.checked_sub(self.first)?).ok()?;
        let entry = self.ring.get_mut(index)?;
        if !entry.as_ref().is_some_and(accept) {
            return None;
        }
        let ticket = entry.take();
        self.live -= 1;
        self.drop_holes();
        ticket
    }

    /// Expire tickets issued more than `timeout` before `now`, oldest
    /// first, handing each to `on_expired`. Amortised O(1) per ticket.
    pub fn expire(&mut self, now: f64, timeout: f64, mut on_expired: impl FnMut(&Ticket)) {
        while let Some(front) = self.ring.front() {
            match front {
                Some(t) if now - t.issued_at > timeout => {
                    let t = *t;
                    self.pop_front();
                    self.live -= 1;
                    on_expired(&t);
                }
                Some(_) => break,
                None => {
                    self.pop_front();
                }
            }
        }
    }

    /// Number of outstanding tickets.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn pop_front(&mut self) -> Option<Option<Ticket>> {
        let entry = self.ring.pop_front()?;
        self.first += 1;
        Some(entry)
    }

    fn drop_holes(&mut self) {
        while matches!(self.ring.front(), Some(None)) {
            self.pop_front();
        }
        if self.ring.is_empty() && self.ring.capacity() > 1024 {
            self.ring.shrink_to(1024);
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
        }
    }

    #[test]
    fn tickets_are_taken_once_and_expire_oldest_first() {
        let mut store = TicketStore::default();
        let a = store.issue(at(0, 0.0), |_| unreachable!());
        let b = store.issue(at(1, 5.0), |_| unreachable!());
        assert_eq!((a, b), (1, 2));
        assert!(store.take_if(b, |t| t.slot == 0).is_none());
        assert_eq!(store.take_if(b, |t| t.slot == 1), Some(at(1, 5.0)));
        assert!(store.take_if(b, |_| true).is_none());
        let mut expired = Vec::new();
        store.expire(10.0, 9.0, |t| expired.push(t.slot));
        assert_eq!(expired, vec![0]);
        assert!(store.is_empty());
        assert!(store.get(a).is_none());
        assert_eq!(store.issue(at(2, 11.0), |_| unreachable!()), 3);
    }

    #[test]
    fn the_ring_is_bounded() {
        let mut store = TicketStore::default();
        let mut expired = 0;
        for _ in 0..MAX_OUTSTANDING_TICKETS + 10 {
            store.issue(at(0, 0.0), |_| expired += 1);
        }
        assert_eq!(expired, 10);
        assert_eq!(store.len(), MAX_OUTSTANDING_TICKETS);
    }
}
