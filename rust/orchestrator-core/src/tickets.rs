//! Selection tickets: one per selection whose outcome is still owed.
//!
//! Tickets are numbered in issue order and issued at non-decreasing times.
//! The recent ones live in a ring indexed by number, so issuing, reporting
//! and expiring touch only its two ends (which stay in cache however many
//! tickets are outstanding) and never hash. A reported ticket leaves a hole;
//! once holes outnumber the ring's live tickets (plus a constant), the live
//! ones move to a hash map of stragglers and the ring starts afresh. Each
//! move is paid for by the reports that made the holes, so the ring stays
//! within twice its live count, every operation is amortised O(1), and the
//! cost of a selection does not depend on how many tickets are outstanding
//! or were ever issued.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::budgets::Hold;

/// The most tickets one table keeps outstanding. Issuing more expires the
/// oldest early, as if its pending timeout had passed, so memory stays
/// bounded whatever callers do. Only live tickets count: any number of
/// selections reported at once never expires an older one still in flight.
pub const MAX_OUTSTANDING_TICKETS: usize = 1 << 20;

/// Holes tolerated in the ring (and stale numbers in the stragglers' queue)
/// beyond the live count before they are compacted (so small stores never
/// compact).
const COMPACT_SLACK: usize = if cfg!(test) { 8 } else { 1024 };

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

/// Outstanding tickets: the recent ones in a ring by number, older
/// stragglers in a map with their numbers in issue order.
#[derive(Debug)]
pub struct TicketStore {
    /// Number of `ring[0]`; the next ticket is `base + ring.len()`.
    base: u64,
    /// Tickets numbered from `base` on; `None` once taken or expired.
    ring: VecDeque<Option<Ticket>>,
    /// Live tickets in `ring`.
    ring_live: usize,
    /// Live tickets numbered below `base`.
    stragglers: FxHashMap<u64, Ticket>,
    /// The stragglers' numbers in issue order; some may be stale (taken).
    straggler_order: VecDeque<u64>,
}

impl Default for TicketStore {
    fn default() -> Self {
        TicketStore {
            base: 1,
            ring: VecDeque::new(),
            ring_live: 0,
            stragglers: FxHashMap::default(),
            straggler_order: VecDeque::new(),
        }
    }
}

impl TicketStore {
    /// Issue a ticket; returns its number (never 0). When
    /// [`MAX_OUTSTANDING_TICKETS`] are live, the oldest live one is expired
    /// first and handed to `on_expired` with its number.
    pub fn issue(&mut self, ticket: Ticket, mut on_expired: impl FnMut(u64, &Ticket)) -> u64 {
        while self.len() >= MAX_OUTSTANDING_TICKETS {
            match self.pop_oldest(|_| true) {
                Some((number, old)) => on_expired(number, &old),
                None => break,
            }
        }
        let number = self.base + self.ring.len() as u64;
        self.ring.push_back(Some(ticket));
        self.ring_live += 1;
        number
    }

    /// The outstanding ticket `number`, if any.
    #[inline]
    pub fn get(&self, number: u64) -> Option<&Ticket> {
        match number.checked_sub(self.base) {
            Some(offset) => self.ring.get(usize::try_from(offset).ok()?)?.as_ref(),
            None => self.stragglers.get(&number),
        }
    }

    /// Remove ticket `number` if `accept` agrees it is the caller's.
    pub fn take_if(&mut self, number: u64, accept: impl FnOnce(&Ticket) -> bool) -> Option<Ticket> {
        if !self.get(number).is_some_and(accept) {
            return None;
        }
        match number.checked_sub(self.base) {
            Some(offset) => {
                let ticket = self.ring[offset as usize].take();
                self.ring_live -= 1;
                self.compact_ring();
                ticket
            }
            None => {
                let ticket = self.stragglers.remove(&number);
                self.compact_stragglers();
                ticket
            }
        }
    }

    /// Expire tickets issued more than `timeout` before `now`, oldest
    /// first, handing each (with its number) to `on_expired`. Amortised O(1)
    /// per ticket.
    pub fn expire(&mut self, now: f64, timeout: f64, mut on_expired: impl FnMut(u64, &Ticket)) {
        while let Some((number, t)) = self.pop_oldest(|t| now - t.issued_at > timeout) {
            on_expired(number, &t);
        }
    }

    /// Remove and return the oldest live ticket if `expired` says so.
    /// Stragglers are older than every ticket in the ring.
    fn pop_oldest(&mut self, expired: impl Fn(&Ticket) -> bool) -> Option<(u64, Ticket)> {
        while let Some(&number) = self.straggler_order.front() {
            match self.stragglers.get(&number) {
                Some(t) if !expired(t) => return None,
                Some(_) => {
                    self.straggler_order.pop_front();
                    return self.stragglers.remove(&number).map(|t| (number, t));
                }
                None => {
                    self.straggler_order.pop_front();
                }
            }
        }
        self.drop_leading_holes();
        match self.ring.front() {
            Some(Some(t)) if expired(t) => {
                let number = self.base;
                let t = self.ring.pop_front().flatten();
                self.base += 1;
                self.ring_live -= 1;
                self.compact_ring();
                t.map(|t| (number, t))
            }
            _ => None,
        }
    }

    /// Every outstanding ticket with its number, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Ticket)> {
        let base = self.base;
        let ring = self
            .ring
            .iter()
            .enumerate()
            .filter_map(move |(k, t)| t.as_ref().map(|t| (base + k as u64, t)));
        self.stragglers.iter().map(|(&n, t)| (n, t)).chain(ring)
    }

    /// Number of outstanding tickets.
    pub fn len(&self) -> usize {
        self.ring_live + self.stragglers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn drop_leading_holes(&mut self) {
        while self.ring.front().is_some_and(Option::is_none) {
            self.ring.pop_front();
            self.base += 1;
        }
    }

    /// Drop the ring's leading holes; once holes outnumber its live
    /// tickets, move those to the stragglers and start the ring afresh.
    fn compact_ring(&mut self) {
        self.drop_leading_holes();
        if self.ring.len() - self.ring_live > self.ring_live + COMPACT_SLACK {
            let base = self.base;
            self.base += self.ring.len() as u64;
            for (k, t) in self.ring.drain(..).enumerate() {
                if let Some(t) = t {
                    let number = base + k as u64;
                    self.stragglers.insert(number, t);
                    self.straggler_order.push_back(number);
                }
            }
            self.ring_live = 0;
        }
        if self.ring.is_empty() && self.ring.capacity() > COMPACT_SLACK {
            self.ring.shrink_to(COMPACT_SLACK);
        }
    }

    /// Drop stale straggler numbers at the oldest end, and compact their
    /// queue once stale numbers outnumber live ones.
    fn compact_stragglers(&mut self) {
        while self
            .straggler_order
            .front()
            .is_some_and(|n| !self.stragglers.contains_key(n))
        {
            self.straggler_order.pop_front();
        }
        if self.straggler_order.len() > 2 * self.stragglers.len() + COMPACT_SLACK {
            let live = &self.stragglers;
            self.straggler_order.retain(|n| live.contains_key(n));
        }
        if self.stragglers.is_empty() && self.straggler_order.capacity() > COMPACT_SLACK {
            self.straggler_order.shrink_to(COMPACT_SLACK);
            self.stragglers.shrink_to(COMPACT_SLACK);
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
            store.ring.len() + store.straggler_order.len() <= 2 + 2 * COMPACT_SLACK,
            "holes and stale numbers are compacted"
        );
        assert_eq!(store.take_if(long, |t| t.slot == 0), Some(at(0, 0.0)));
        assert!(store.is_empty());
    }

    /// One step of the model-based test: issue (after `dt` seconds), take
    /// the `k`-th outstanding ticket, take a number never issued, or expire.
    #[derive(Debug, Clone)]
    enum Step {
        Issue(f64),
        Take(usize),
        TakeUnknown(u64),
        Expire(f64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0.0..2.0f64).prop_map(Step::Issue),
            3 => any::<usize>().prop_map(Step::Take),
            1 => any::<u64>().prop_map(Step::TakeUnknown),
            1 => (0.0..50.0f64).prop_map(Step::Expire),
        ]
    }

    proptest::proptest! {
        /// The store agrees with an ordered map of live tickets after every
        /// step: the same tickets live, the same ones expired, in order.
        #[test]
        fn behaves_like_an_ordered_map(steps in proptest::collection::vec(step(), 1..3000)) {
            let mut store = TicketStore::default();
            let mut model = std::collections::BTreeMap::<u64, Ticket>::new();
            let mut clock = 0.0;
            let mut issued = 0u64;
            for s in steps {
                match s {
                    Step::Issue(dt) => {
                        clock += dt;
                        let t = at(issued as u32, clock);
                        let n = store.issue(t, |_, _| unreachable!());
                        issued += 1;
                        proptest::prop_assert_eq!(n, issued);
                        model.insert(n, t);
                    }
                    Step::Take(k) if !model.is_empty() => {
                        let n = *model.keys().nth(k % model.len()).unwrap();
                        proptest::prop_assert_eq!(store.take_if(n, |_| true), model.remove(&n));
                        proptest::prop_assert_eq!(store.take_if(n, |_| true), None);
                    }
                    Step::Take(_) => {}
                    Step::TakeUnknown(n) => {
                        let expected = model.remove(&n);
                        proptest::prop_assert_eq!(store.take_if(n, |_| true), expected);
                    }
                    Step::Expire(timeout) => {
                        let mut got = Vec::new();
                        store.expire(clock, timeout, |n, t| got.push((n, *t)));
                        let expired: Vec<(u64, Ticket)> = model
                            .iter()
                            .filter(|(_, t)| clock - t.issued_at > timeout)
                            .map(|(&n, &t)| (n, t))
                            .collect();
                        for (n, _) in &expired {
                            model.remove(n);
                        }
                        proptest::prop_assert_eq!(got, expired);
                    }
                }
                proptest::prop_assert_eq!(store.len(), model.len());
                let mut live: Vec<(u64, Ticket)> = store.iter().map(|(n, &t)| (n, t)).collect();
                live.sort_by_key(|&(n, _)| n);
                let expected: Vec<(u64, Ticket)> = model.iter().map(|(&n, &t)| (n, t)).collect();
                proptest::prop_assert_eq!(live, expected);
                for (&n, t) in &model {
                    proptest::prop_assert_eq!(store.get(n), Some(t));
                }
                proptest::prop_assert!(
                    store.ring.len() - store.ring_live <= store.ring_live + COMPACT_SLACK,
                    "the ring's holes stay within its live tickets"
                );
            }
        }
    }
}
