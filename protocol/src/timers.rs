//! Every timer a node can set, and the queue that orders them. Setting a timer again moves it.
//! A price's own timers are kept in its book entry, so that removing the price removes them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::book::Book;
use crate::price::PriceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Observe and publish this node's own price.
    Observe,
    /// Observe between publications: publish early if the price moved `deviation_bps`; without
    /// that rule, once, for prices awaiting an observation after a fetch short of sources.
    Watch,
    /// Write this node's heartbeat and read the table.
    Heartbeat,
    /// This node's wave of the committee may co-sign the price now.
    CoSign(PriceId),
    /// The price's write delay is over (or a failed write's backoff).
    Write(PriceId),
    /// Send a ready price again if it is still not seen stored.
    Retransmit(PriceId),
    /// Drop the price from memory if it is past its time.
    Expire(PriceId),
}

/// The deadlines of one price's timers (`CoSign`, `Write`, `Retransmit`, `Expire`), held in its
/// book entry.
pub(crate) type PriceDeadlines = [Option<u64>; 4];

/// Where a timer's deadline is kept.
enum Place {
    Node(usize),
    Price(PriceId, usize),
}

impl Timer {
    fn place(self) -> Place {
        match self {
            Timer::Observe => Place::Node(0),
            Timer::Watch => Place::Node(1),
            Timer::Heartbeat => Place::Node(2),
            Timer::CoSign(id) => Place::Price(id, 0),
            Timer::Write(id) => Place::Price(id, 1),
            Timer::Retransmit(id) => Place::Price(id, 2),
            Timer::Expire(id) => Place::Price(id, 3),
        }
    }

    /// A price's timers, in the order of the timers.
    fn of_price(id: PriceId) -> [Timer; 4] {
        [
            Timer::CoSign(id),
            Timer::Write(id),
            Timer::Retransmit(id),
            Timer::Expire(id),
        ]
    }
}

/// A timer at its deadline as the queue holds it: ordered as `(deadline, Timer)` are (the kind,
/// then the price id's halves), in 32 bytes where the pair takes 48 (a price id is aligned to 16).
/// Every price a node holds queues one; each push and pop moves a dozen of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Queued(u64, u8, u64, u64);

impl Queued {
    fn new(at: u64, timer: Timer) -> Queued {
        let (kind, id) = match timer {
            Timer::Observe => (0, 0),
            Timer::Watch => (1, 0),
            Timer::Heartbeat => (2, 0),
            Timer::CoSign(id) => (3, id.0),
            Timer::Write(id) => (4, id.0),
            Timer::Retransmit(id) => (5, id.0),
            Timer::Expire(id) => (6, id.0),
        };
        Queued(at, kind, (id >> 64) as u64, id as u64)
    }

    fn get(self) -> (u64, Timer) {
        let id = PriceId(u128::from(self.2) << 64 | u128::from(self.3));
        let timer = match self.1 {
            0 => Timer::Observe,
            1 => Timer::Watch,
            2 => Timer::Heartbeat,
            3 => Timer::CoSign(id),
            4 => Timer::Write(id),
            5 => Timer::Retransmit(id),
            _ => Timer::Expire(id),
        };
        (self.0, timer)
    }
}

/// The deadlines are the truth: the node's own here, each price's in its book entry (a timer
/// for a price not held cannot be set). The queue only orders them. Setting or cancelling a
/// timer leaves its old entry in the queue, dropped when it comes to the front (its deadline no
/// longer matches). Every node sets a timer for every price it holds, so a set, a cancel and the
/// removal of a price touch only the entry the caller already holds and the top of a heap: no
/// walk of a table of all the timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// `Observe`, `Watch`, `Heartbeat`.
    node: [Option<u64>; 3],
    queue: BinaryHeap<Reverse<Queued>>,
    /// The earliest timer set, which is also the front of the queue: a driver asks for it after
    /// every event.
    first: Option<(u64, Timer)>,
    /// Timers set, the node's and its prices'.
    len: usize,
}

impl Timers {
    /// Sets `timer` to `at`, moving it if set; a timer of a price not held is not set.
    pub fn set(&mut self, book: &mut Book, timer: Timer, at: u64) {
        let Some(deadline) = self.deadline_mut(book, timer) else {
            return;
        };
        let old = deadline.replace(at);
        if old == Some(at) {
            return;
        }
        if old.is_none() {
            self.len += 1;
        }
        self.queue.push(Reverse(Queued::new(at, timer)));
        if self.first.is_none_or(|first| (at, timer) < first) {
            self.first = Some((at, timer));
        } else if old.map(|old| (old, timer)) == self.first {
            self.settle(book);
        }
        // Entries left behind are bounded by the most timers set at once (about four times that),
        // not by how often they moved. A stored price's expiry stays queued for about twice as
        // long as the price was held, so a lower bound would rebuild the queue over and over.
        if self.queue.len() > 4 * self.len + 64 {
            self.rebuild(book);
        }
    }

    pub fn cancel(&mut self, book: &mut Book, timer: Timer) {
        let Some(old) = self.deadline_mut(book, timer).and_then(Option::take) else {
            return;
        };
        self.len -= 1;
        if self.first == Some((old, timer)) {
            self.settle(book);
        }
    }

    /// A price's timers were removed with it (`deadlines` is what its entry held).
    pub fn forget(&mut self, book: &Book, id: PriceId, deadlines: &PriceDeadlines) {
        self.len -= deadlines.iter().flatten().count();
        if self.first.is_some_and(|(_, timer)| Timer::of_price(id).contains(&timer)) {
            self.settle(book);
        }
    }

    pub fn next(&self) -> Option<(u64, Timer)> {
        self.first
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, book: &mut Book, now: u64) -> Option<Timer> {
        let (at, timer) = self.first?;
        if at > now {
            return None;
        }
        self.cancel(book, timer);
        Some(timer)
    }

    /// Every timer set and its deadline, in the order of the timers.
    pub fn all<'a>(&'a self, book: &'a Book) -> impl Iterator<Item = (Timer, u64)> + 'a {
        let node = [Timer::Observe, Timer::Watch, Timer::Heartbeat]
            .into_iter()
            .zip(self.node)
            .filter_map(|(timer, at)| Some((timer, at?)));
        let prices = (0..4).flat_map(move |slot| {
            book.entries().filter_map(move |entry| {
                let at = entry.deadlines[slot]?;
                Some((Timer::of_price(entry.body.id)[slot], at))
            })
        });
        node.chain(prices)
    }

    /// The queue anew, from the deadlines set. The order they are read in cannot matter: the
    /// queue pops by deadline and timer, and no two timers set are alike.
    fn rebuild(&mut self, book: &Book) {
        let node = [Timer::Observe, Timer::Watch, Timer::Heartbeat]
            .into_iter()
            .zip(self.node)
            .filter_map(|(timer, at)| Some(Reverse(Queued::new(at?, timer))));
        let prices = book.entries_unordered().flat_map(|entry| {
            (Timer::of_price(entry.body.id).into_iter())
                .zip(entry.deadlines)
                .filter_map(|(timer, at)| Some(Reverse(Queued::new(at?, timer))))
        });
        self.queue = node.chain(prices).collect();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn deadline(&self, book: &Book, timer: Timer) -> Option<u64> {
        match timer.place() {
            Place::Node(slot) => self.node[slot],
            Place::Price(id, slot) => book.get(id)?.deadlines[slot],
        }
    }

    fn deadline_mut<'a>(
        &'a mut self,
        book: &'a mut Book,
        timer: Timer,
    ) -> Option<&'a mut Option<u64>> {
        match timer.place() {
            Place::Node(slot) => Some(&mut self.node[slot]),
            Place::Price(id, slot) => Some(&mut book.get_mut(id)?.deadlines[slot]),
        }
    }

    /// Drops entries from the front of the queue until the front is a timer still set at that
    /// deadline, which becomes `first`.
    fn settle(&mut self, book: &Book) {
        while let Some(&Reverse(queued)) = self.queue.peek() {
            let (at, timer) = queued.get();
            if self.deadline(book, timer) == Some(at) {
                self.first = Some((at, timer));
                return;
            }
            self.queue.pop();
        }
        self.first = None;
    }

    /// The table's invariants, or the first one broken: `first` is the earliest timer set, the
    /// count is right, and the queue holds every timer set at its deadline.
    #[cfg(feature = "arbitrary")]
    pub fn check(&self, book: &Book) -> Result<(), String> {
        let earliest = self.all(book).map(|(timer, at)| (at, timer)).min();
        if self.first != earliest {
            return Err(format!("first {:?}, earliest set {earliest:?}", self.first));
        }
        let set = self.all(book).count();
        if self.len != set {
            return Err(format!("{} timers counted, {set} set", self.len));
        }
        let queued: std::collections::BTreeSet<_> = self.queue.iter().map(|r| r.0.get()).collect();
        if let Some((timer, at)) = self.all(book).find(|&(t, at)| !queued.contains(&(at, t))) {
            return Err(format!("{timer:?} set at {at} is not queued"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue's form of a timer orders as the timer does, and gives it back.
    #[test]
    fn queued_timers_order_as_timers_do() {
        let ids = [0, 1, 1 << 64, u128::MAX - 1, u128::MAX].map(PriceId);
        let mut timers = vec![Timer::Observe, Timer::Watch, Timer::Heartbeat];
        for id in ids {
            timers.extend(Timer::of_price(id));
        }
        let pairs: Vec<(u64, Timer)> = [0, 7, u64::MAX]
            .into_iter()
            .flat_map(|at| timers.iter().map(move |&timer| (at, timer)))
            .collect();
        for &a in &pairs {
            assert_eq!(Queued::new(a.0, a.1).get(), a);
            for &b in &pairs {
                assert_eq!(
                    Queued::new(a.0, a.1).cmp(&Queued::new(b.0, b.1)),
                    a.cmp(&b),
                    "{a:?} against {b:?}"
                );
            }
        }
        assert_eq!(std::mem::size_of::<Queued>(), 32);
    }
}
