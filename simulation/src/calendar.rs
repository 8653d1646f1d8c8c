//! Happenings at simulated milliseconds (the nodes' wakes, the copies arriving at them) in the
//! order `(time, item)`, as a min-heap of them gives, in a calendar of one bucket per millisecond:
//! a run wakes some node at nearly every millisecond, dozens at once in a large network, and a
//! heap of thousands of them moved a dozen entries on every push and pop. Here a push appends to
//! its bucket, and a bucket is sorted once, when its millisecond comes. Items further ahead than
//! the calendar reaches wait in a heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Milliseconds the calendar reaches past the floor: an arrival's latency (with a delay spike), a
/// co-signing wave's step and most timers fall within it.
pub const SPAN: u64 = 4_096;

#[derive(Debug)]
pub struct Calendar<T> {
    /// `buckets[t % SPAN]`: the items due at millisecond `t`, for `t` in `[floor, floor + SPAN)`
    /// (every item is at or after the floor, and was pushed within a span of a floor at or
    /// before this one, so no two of those times share a bucket).
    buckets: Vec<Vec<T>>,
    /// The time of the last job the agenda gave out, or of the last item it skipped: nothing
    /// earlier is pushed, and nothing earlier is held.
    floor: u64,
    /// No bucket before this time holds an item (at or after the floor).
    scan: u64,
    /// The time of the one bucket in order, descending (its smallest last).
    sorted: Option<u64>,
    /// Items pushed a span or more past the floor as it was then; they stay here when the floor
    /// comes nearer, and `peek` compares them with the calendar's first.
    far: BinaryHeap<Reverse<(u64, T)>>,
    /// Emptied buckets' storage, for the next bucket pushed to: a few dozen buckets hold items at
    /// once, and without this each of thousands would keep the capacity of its busiest
    /// millisecond.
    spare: Vec<Vec<T>>,
}

impl<T: Ord> Default for Calendar<T> {
    fn default() -> Calendar<T> {
        Calendar {
            buckets: (0..SPAN).map(|_| Vec::new()).collect(),
            floor: 0,
            scan: 0,
            sorted: None,
            far: BinaryHeap::new(),
            spare: Vec::new(),
        }
    }
}

impl<T: Ord> Calendar<T> {
    /// Time has come to `now`: nothing earlier than it is pushed after this.
    pub fn advance(&mut self, now: u64) {
        debug_assert!(now >= self.floor, "time runs forward");
        self.floor = now;
    }

    pub fn push(&mut self, at: u64, item: T) {
        debug_assert!(at >= self.floor, "an item in the past");
        if at >= self.floor.saturating_add(SPAN) {
            return self.far.push(Reverse((at, item)));
        }
        let bucket = &mut self.buckets[(at % SPAN) as usize];
        if bucket.capacity() == 0
            && let Some(storage) = self.spare.pop()
        {
            *bucket = storage;
        }
        if self.sorted == Some(at) {
            // Descending: after every item above it, before every item below.
            let place = bucket.partition_point(|queued| *queued > item);
            bucket.insert(place, item);
        } else {
            bucket.push(item);
        }
        self.scan = self.scan.min(at);
    }

    /// The earliest item, `(time, item)`, least item first within a millisecond.
    pub fn peek(&mut self) -> Option<(u64, &T)> {
        let near = self.first_near().map(|at| (at, self.last_at(at)));
        let far = self.far.peek().map(|Reverse((at, item))| (*at, item));
        match (near, far) {
            (Some(near), Some(far)) => Some(near.min(far)),
            (near, far) => near.or(far),
        }
    }

    pub fn pop(&mut self) -> Option<(u64, T)> {
        let near = self.first_near();
        let far_first = match (near, self.far.peek()) {
            (Some(at), Some(Reverse((far_at, far)))) => (*far_at, far) < (at, self.last_at(at)),
            (near, far) => near.is_none() && far.is_some(),
        };
        if far_first {
            return self.far.pop().map(|Reverse(first)| first);
        }
        let at = near?;
        let bucket = &mut self.buckets[(at % SPAN) as usize];
        let item = bucket.pop()?;
        if bucket.is_empty() {
            self.spare.push(std::mem::take(bucket));
        }
        Some((at, item))
    }

    /// The items due at the floor's millisecond, least last, once its bucket is sorted (else
    /// none).
    pub fn at_floor(&self) -> &[T] {
        match self.sorted == Some(self.floor) {
            true => &self.buckets[(self.floor % SPAN) as usize],
            false => &[],
        }
    }

    /// How many buckets' storage is allocated, in the buckets and spare: never more than the
    /// buckets, as storage is allocated only when no spare is left.
    pub fn storages(&self) -> usize {
        self.spare.len() + (self.buckets.iter()).filter(|b| b.capacity() > 0).count()
    }

    /// The time of the earliest item in the calendar, its bucket sorted.
    fn first_near(&mut self) -> Option<u64> {
        self.scan = self.scan.max(self.floor);
        let end = self.floor.saturating_add(SPAN);
        while self.scan < end && self.buckets[(self.scan % SPAN) as usize].is_empty() {
            self.scan += 1;
        }
        if self.scan == end {
            return None;
        }
        let at = self.scan;
        if self.sorted != Some(at) {
            self.buckets[(at % SPAN) as usize].sort_unstable_by(|a, b| b.cmp(a));
            self.sorted = Some(at);
        }
        Some(at)
    }

    /// The least item of the bucket at `at`, which is sorted and not empty.
    fn last_at(&self, at: u64) -> &T {
        self.buckets[(at % SPAN) as usize]
            .last()
            .expect("the first bucket holds an item")
    }
}
