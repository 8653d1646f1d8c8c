//! Every timer a node can set, and the queues that order them. Setting a timer again moves it.
//! A price's own timers are kept in its book entry, so that removing the price removes them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::book::{Book, Entry};
use crate::prefetch::Prefetch;
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

/// The kinds of the node's own timers; the price timers' follow.
const NODE_KINDS: u8 = 3;
const KINDS: u8 = 7;

/// Where a timer's deadline is kept.
enum Place {
    OfNode(usize),
    OfPrice(PriceId, usize),
}

impl Timer {
    /// The timer's kind (its variant's place in the order of variants) and its price, if any.
    pub(crate) fn kind(self) -> (u8, Option<PriceId>) {
        match self {
            Timer::Observe => (0, None),
            Timer::Watch => (1, None),
            Timer::Heartbeat => (2, None),
            Timer::CoSign(id) => (3, Some(id)),
            Timer::Write(id) => (4, Some(id)),
            Timer::Retransmit(id) => (5, Some(id)),
            Timer::Expire(id) => (6, Some(id)),
        }
    }

    /// The timer of `kind`; a price's kind needs its id. `None` for a kind that is no timer's.
    pub(crate) fn of_kind(kind: u8, id: Option<PriceId>) -> Option<Timer> {
        Some(match (kind, id) {
            (0, _) => Timer::Observe,
            (1, _) => Timer::Watch,
            (2, _) => Timer::Heartbeat,
            (3, Some(id)) => Timer::CoSign(id),
            (4, Some(id)) => Timer::Write(id),
            (5, Some(id)) => Timer::Retransmit(id),
            (6, Some(id)) => Timer::Expire(id),
            _ => return None,
        })
    }

    /// Whether a timer of `kind` belongs to a price (and so carries its id).
    pub(crate) fn is_price_kind(kind: u8) -> bool {
        (NODE_KINDS..KINDS).contains(&kind)
    }

    fn place(self) -> Place {
        match self.kind() {
            (kind, None) => Place::OfNode(usize::from(kind)),
            (kind, Some(id)) => Place::OfPrice(id, usize::from(kind - NODE_KINDS)),
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

/// A timer at its deadline as the queues hold it: ordered as `(deadline, Timer)` are (the kind,
/// then the price id's halves), in 32 bytes where the pair takes 48 (a price id is aligned to 16).
/// Every price a node holds queues one; each push and pop on the heap moves a dozen of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    at: u64,
    kind: u8,
    id_high: u64,
    id_low: u64,
}

impl Queued {
    fn new(at: u64, timer: Timer) -> Queued {
        let (kind, id) = timer.kind();
        let id = id.map_or(0, |id| id.0);
        Queued {
            at,
            kind,
            id_high: (id >> 64) as u64,
            id_low: id as u64,
        }
    }

    fn unpack(self) -> (u64, Timer) {
        let id = PriceId(u128::from(self.id_high) << 64 | u128::from(self.id_low));
        let timer = Timer::of_kind(self.kind, Some(id)).expect("queued from a timer");
        (self.at, timer)
    }
}

/// The deadlines are the truth: the node's own here, each price's in its book entry (a timer
/// for a price not held cannot be set). The queues only order them. Setting or cancelling a
/// timer leaves its old entry queued, dropped when it comes to the front (its deadline no
/// longer matches). Every node sets a timer for every price it holds: a set or a cancel looks the
/// price up in the book, which its caller has just touched, and queues an entry, and removing
/// a price drops its timers with it, where each walked a table of all the node's timers.
///
/// Most timers are set later than every one queued: each price's expiry, set when it is admitted
/// at a fixed time after its observation, and prices arrive in about that order. Those go at the
/// back of a queue kept in order, whose front is one entry to read, and only the others into a
/// heap. The earliest timer is at the front of one of them.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// `Observe`, `Watch`, `Heartbeat`.
    node: [Option<u64>; 3],
    /// In ascending order.
    in_order: VecDeque<Queued>,
    heap: BinaryHeap<Reverse<Queued>>,
    /// The earliest timer set, the earlier of the two fronts: a driver asks for it after every
    /// event.
    first: Option<(u64, Timer)>,
    /// Timers set, the node's and its prices'.
    len: usize,
}

impl Timers {
    /// The lines a wake reads: the earliest timer, the node's own, the ordered queue.
    pub fn prefetch(&self, prefetch: &impl Prefetch) {
        prefetch.fetch(&self.first);
        prefetch.fetch(&self.node);
        prefetch.fetch(&self.in_order);
    }

    /// Sets `timer` to `at`, moving it if set; a timer of a price not held is not set.
    pub fn set(&mut self, book: &mut Book, timer: Timer, at: u64) {
        let Some(deadline) = self.deadline_mut(book, timer) else {
            debug_assert!(false, "{timer:?} set for a price not held");
            return;
        };
        let old = deadline.replace(at);
        if old == Some(at) {
            return;
        }
        if old.is_none() {
            self.len += 1;
        }
        self.enqueue(Queued::new(at, timer));
        if self.first.is_none_or(|first| (at, timer) < first) {
            self.first = Some((at, timer));
        } else if old.map(|old| (old, timer)) == self.first {
            self.settle(book);
        }
        // Entries left behind are bounded by the most timers set at once (four times that, and
        // 64), not by how often they moved. A stored price's expiry stays queued for about twice as
        // long as the price was held, so a lower bound would rebuild the queues over and over.
        if self.in_order.len() + self.heap.len() > 4 * self.len + 64 {
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

    /// A price's timers were removed with it (`removed` is its entry).
    pub fn forget(&mut self, book: &Book, removed: &Entry) {
        self.len -= removed.deadlines.iter().flatten().count();
        let timers = Timer::of_price(removed.body.id);
        if self.first.is_some_and(|(_, timer)| timers.contains(&timer)) {
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
        if let Some(deadline) = self.deadline_mut(book, timer)
            && *deadline == Some(at)
        {
            *deadline = None;
            self.len -= 1;
        }
        // Whatever the front held, it moves on: a timer is never popped twice.
        self.settle(book);
        Some(timer)
    }

    /// Every timer set and its deadline, in the order of the timers.
    pub fn all(&self, book: &Book) -> Vec<(Timer, u64)> {
        let entries: Vec<&Entry> = book.entries().collect();
        let mut all: Vec<(Timer, u64)> = self.node_timers().collect();
        for slot in 0..4 {
            all.extend(entries.iter().filter_map(|entry| {
                Some((Timer::of_price(entry.body.id)[slot], entry.deadlines[slot]?))
            }));
        }
        all
    }

    /// The node's own timers that are set, and their deadlines.
    fn node_timers(&self) -> impl Iterator<Item = (Timer, u64)> + '_ {
        [Timer::Observe, Timer::Watch, Timer::Heartbeat]
            .into_iter()
            .zip(self.node)
            .filter_map(|(timer, at)| Some((timer, at?)))
    }

    /// The queues anew, from the deadlines set: all of them in order. The order they are read in
    /// cannot matter, as they are sorted, and no two timers set are alike.
    fn rebuild(&mut self, book: &Book) {
        let node = (self.node_timers()).map(|(timer, at)| Queued::new(at, timer));
        let prices = book.entries_unordered().flat_map(|entry| {
            (Timer::of_price(entry.body.id).into_iter())
                .zip(entry.deadlines)
                .filter_map(|(timer, at)| Some(Queued::new(at?, timer)))
        });
        let mut all: Vec<Queued> = node.chain(prices).collect();
        all.sort_unstable();
        self.in_order = all.into();
        self.heap.clear();
    }

    /// Queues an entry: at the back of the ordered queue if none there is later, else on the heap.
    fn enqueue(&mut self, queued: Queued) {
        if self.in_order.back().is_none_or(|&last| last <= queued) {
            self.in_order.push_back(queued);
        } else {
            self.heap.push(Reverse(queued));
        }
    }

    /// Whether the earliest entry queued is the heap's (else the ordered queue's, if any).
    fn heap_first(&self) -> bool {
        (self.heap.peek()).is_some_and(|&Reverse(h)| self.in_order.front().is_none_or(|&o| h < o))
    }

    /// The earliest entry queued, set or not.
    fn front(&self) -> Option<Queued> {
        match self.heap_first() {
            true => self.heap.peek().map(|&Reverse(queued)| queued),
            false => self.in_order.front().copied(),
        }
    }

    fn pop_front(&mut self) {
        if self.heap_first() {
            self.heap.pop();
        } else {
            self.in_order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn deadline(&self, book: &Book, timer: Timer) -> Option<u64> {
        match timer.place() {
            Place::OfNode(slot) => self.node[slot],
            Place::OfPrice(id, slot) => book.get(id)?.deadlines[slot],
        }
    }

    fn deadline_mut<'a>(
        &'a mut self,
        book: &'a mut Book,
        timer: Timer,
    ) -> Option<&'a mut Option<u64>> {
        match timer.place() {
            Place::OfNode(slot) => Some(&mut self.node[slot]),
            Place::OfPrice(id, slot) => Some(&mut book.get_mut(id)?.deadlines[slot]),
        }
    }

    /// Drops entries from the front of the queues until the front is a timer still set at that
    /// deadline, which becomes `first`.
    fn settle(&mut self, book: &Book) {
        while let Some(queued) = self.front() {
            let (at, timer) = queued.unpack();
            if self.deadline(book, timer) == Some(at) {
                self.first = Some((at, timer));
                return;
            }
            self.pop_front();
        }
        self.first = None;
    }

    /// The timers' invariants, or the first one broken: `first` is the earliest timer set, the
    /// count is right, the ordered queue is in order, and every timer set is queued at its
    /// deadline.
    #[cfg(feature = "arbitrary")]
    pub fn check(&self, book: &Book) -> Result<(), String> {
        let all = self.all(book);
        let earliest = all.iter().map(|&(timer, at)| (at, timer)).min();
        if self.first != earliest {
            return Err(format!("first {:?}, earliest set {earliest:?}", self.first));
        }
        let set = all.len();
        if self.len != set {
            return Err(format!("{} timers counted, {set} set", self.len));
        }
        if !self.in_order.iter().is_sorted() {
            return Err("the ordered queue is out of order".into());
        }
        let heap = self.heap.iter().map(|r| r.0);
        let queued: std::collections::BTreeSet<_> = (self.in_order.iter().copied().chain(heap))
            .map(Queued::unpack)
            .collect();
        if let Some((timer, at)) = all.into_iter().find(|&(t, at)| !queued.contains(&(at, t))) {
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
            assert_eq!(Queued::new(a.0, a.1).unpack(), a);
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
