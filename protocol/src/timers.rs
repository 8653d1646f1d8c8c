//! Every timer a node can set, and the table that orders them. Setting a timer again moves it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

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

/// The deadlines are the truth; the queue only orders them. Setting or cancelling a timer leaves
/// its old entry in the queue, dropped when it comes to the front (its deadline no longer
/// matches): a push onto a heap touches a few of its entries where a sorted tree of wide keys
/// walked and shifted whole nodes, on every timer set and cancelled (every node sets one for
/// every price it holds).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    deadline: BTreeMap<Timer, u64>,
    queue: BinaryHeap<Reverse<(u64, Timer)>>,
    /// The earliest timer set, which is also the front of the queue: a driver asks for it after
    /// every event.
    first: Option<(u64, Timer)>,
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: u64) {
        let old = self.deadline.insert(timer, at);
        if old == Some(at) {
            return;
        }
        self.queue.push(Reverse((at, timer)));
        if self.first.is_none_or(|first| (at, timer) < first) {
            self.first = Some((at, timer));
        } else if old.map(|old| (old, timer)) == self.first {
            self.settle();
        }
        // Entries left behind are bounded by the most timers set at once (about twice that), not
        // by how often they moved.
        if self.queue.len() > 2 * self.deadline.len() + 16 {
            self.queue = (self.deadline.iter())
                .map(|(&timer, &at)| Reverse((at, timer)))
                .collect();
        }
    }

    pub fn cancel(&mut self, timer: Timer) {
        if let Some(old) = self.deadline.remove(&timer)
            && self.first == Some((old, timer))
        {
            self.settle();
        }
    }

    pub fn next(&self) -> Option<(u64, Timer)> {
        self.first
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<Timer> {
        let (at, timer) = self.first?;
        if at > now {
            return None;
        }
        self.deadline.remove(&timer);
        self.settle();
        Some(timer)
    }

    /// Drops entries from the front of the queue until the front is a timer still set at that
    /// deadline, which becomes `first`.
    fn settle(&mut self) {
        while let Some(&Reverse((at, timer))) = self.queue.peek() {
            if self.deadline.get(&timer) == Some(&at) {
                self.first = Some((at, timer));
                return;
            }
            self.queue.pop();
        }
        self.first = None;
    }

    /// Every timer set and its deadline, in the order of the timers.
    pub fn all(&self) -> impl Iterator<Item = (Timer, u64)> + '_ {
        self.deadline.iter().map(|(&timer, &at)| (timer, at))
    }

    pub fn len(&self) -> usize {
        self.deadline.len()
    }

    /// The table's invariants, or the first one broken: `first` is the earliest timer set, and
    /// the queue holds every timer set at its deadline.
    #[cfg(feature = "arbitrary")]
    pub fn check(&self) -> Result<(), String> {
        let earliest = self.deadline.iter().map(|(&timer, &at)| (at, timer)).min();
        if self.first != earliest {
            return Err(format!("first {:?}, earliest set {earliest:?}", self.first));
        }
        let queued: std::collections::BTreeSet<_> = self.queue.iter().map(|r| r.0).collect();
        if let Some((timer, at)) = self.all().find(|&(t, at)| !queued.contains(&(at, t))) {
            return Err(format!("{timer:?} set at {at} is not queued"));
        }
        Ok(())
    }

    /// Every timer set, in no particular order.
    #[cfg(feature = "arbitrary")]
    pub fn pending(&self) -> impl Iterator<Item = Timer> + '_ {
        self.deadline.keys().copied()
    }
}
