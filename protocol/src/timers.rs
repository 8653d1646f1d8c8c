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
    queue: BinaryHeap<Reverse<(u64, Timer)>>,
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
        self.queue.push(Reverse((at, timer)));
        if self.first.is_none_or(|first| (at, timer) < first) {
            self.first = Some((at, timer));
        } else if old.map(|old| (old, timer)) == self.first {
            self.settle(book);
        }
        // Entries left behind are bounded by the most timers set at once (about twice that), not
        // by how often they moved.
        if self.queue.len() > 2 * self.len + 16 {
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
            .filter_map(|(timer, at)| Some(Reverse((at?, timer))));
        let prices = book.entries_unordered().flat_map(|entry| {
            (Timer::of_price(entry.body.id).into_iter())
                .zip(entry.deadlines)
                .filter_map(|(timer, at)| Some(Reverse((at?, timer))))
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
        while let Some(&Reverse((at, timer))) = self.queue.peek() {
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
        let queued: std::collections::BTreeSet<_> = self.queue.iter().map(|r| r.0).collect();
        if let Some((timer, at)) = self.all(book).find(|&(t, at)| !queued.contains(&(at, t))) {
            return Err(format!("{timer:?} set at {at} is not queued"));
        }
        Ok(())
    }
}
