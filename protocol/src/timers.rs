//! Every timer a node can set, and the table that orders them. Setting a timer again moves it.

use std::collections::{BTreeMap, BTreeSet};

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

#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(u64, Timer)>,
    deadline: BTreeMap<Timer, u64>,
    /// The queue's first entry, kept beside it: a driver asks for it after every event, and
    /// walking down to the tree's first leaf each time is most of what asking costs.
    first: Option<(u64, Timer)>,
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: u64) {
        let old = self.deadline.insert(timer, at);
        if let Some(old) = old {
            self.queue.remove(&(old, timer));
        }
        self.queue.insert((at, timer));
        if self.first.is_none_or(|first| (at, timer) < first) {
            self.first = Some((at, timer));
        } else if old.map(|old| (old, timer)) == self.first {
            self.first = self.queue.first().copied();
        }
        debug_assert_eq!(self.first, self.queue.first().copied());
    }

    pub fn cancel(&mut self, timer: Timer) {
        if let Some(old) = self.deadline.remove(&timer) {
            self.queue.remove(&(old, timer));
            if self.first == Some((old, timer)) {
                self.first = self.queue.first().copied();
            }
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
        self.queue.pop_first();
        self.deadline.remove(&timer);
        self.first = self.queue.first().copied();
        Some(timer)
    }

    /// Every timer set and its deadline, in the order of the timers.
    pub fn all(&self) -> impl Iterator<Item = (Timer, u64)> + '_ {
        self.deadline.iter().map(|(&timer, &at)| (timer, at))
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Every timer set, in no particular order.
    #[cfg(feature = "arbitrary")]
    pub fn pending(&self) -> impl Iterator<Item = Timer> + '_ {
        self.deadline.keys().copied()
    }
}
