//! The nodes' wakes in the order `(time, node)`, as a min-heap of them gives, in a calendar of one
//! bucket per millisecond: a run wakes some node at nearly every millisecond, dozens at once in a
//! large network, and a heap of thousands of wakes moved a dozen entries on every push and pop.
//! Here a push appends to its bucket, and a bucket is sorted by node once, when its millisecond
//! comes. Wakes further ahead than the calendar reaches wait in a heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Milliseconds the calendar reaches past the floor: an arrival's latency, a co-signing wave's
/// step and most timers fall within it.
const SPAN: u64 = 4_096;

#[derive(Debug)]
pub struct Wakes {
    /// `buckets[t % SPAN]`: the nodes woken at millisecond `t`, for `t` in `[floor, floor + SPAN)`
    /// (every wake is at or after the floor, and was pushed within a span of a floor at or
    /// before this one, so no two of those times share a bucket).
    buckets: Vec<Vec<usize>>,
    /// The time of the last job the agenda gave out, or of the last wake it skipped: nothing
    /// earlier is pushed, and nothing earlier is held.
    floor: u64,
    /// No bucket before this time holds a wake (at or after the floor).
    scan: u64,
    /// The time of the one bucket in order, by node descending (its smallest last).
    sorted: Option<u64>,
    /// Wakes pushed a span or more past the floor as it was then; they stay here when the floor
    /// comes nearer, and `peek` compares them with the calendar's first.
    far: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Default for Wakes {
    fn default() -> Wakes {
        Wakes {
            buckets: vec![Vec::new(); SPAN as usize],
            floor: 0,
            scan: 0,
            sorted: None,
            far: BinaryHeap::new(),
        }
    }
}

impl Wakes {
    /// Time has come to `now`: no wake earlier than it is pushed after this.
    pub fn advance(&mut self, now: u64) {
        debug_assert!(now >= self.floor, "time runs forward");
        self.floor = now;
    }

    pub fn push(&mut self, at: u64, node: usize) {
        debug_assert!(at >= self.floor, "a wake in the past");
        if at >= self.floor.saturating_add(SPAN) {
            return self.far.push(Reverse((at, node)));
        }
        let bucket = &mut self.buckets[(at % SPAN) as usize];
        if self.sorted == Some(at) {
            // Descending: after every node above it, before every node below.
            let place = bucket.partition_point(|&queued| queued > node);
            bucket.insert(place, node);
        } else {
            bucket.push(node);
        }
        self.scan = self.scan.min(at);
    }

    /// The earliest wake, `(time, node)`, least node first within a millisecond.
    pub fn peek(&mut self) -> Option<(u64, usize)> {
        let near = self.first_near();
        let far = self.far.peek().map(|&Reverse(wake)| wake);
        match (near, far) {
            (Some(near), Some(far)) => Some(near.min(far)),
            (near, far) => near.or(far),
        }
    }

    pub fn pop(&mut self) -> Option<(u64, usize)> {
        let wake = self.peek()?;
        let (at, _) = wake;
        let bucket = &mut self.buckets[(at % SPAN) as usize];
        if self.sorted == Some(at) && bucket.last() == Some(&wake.1) {
            bucket.pop();
        } else {
            self.far.pop();
        }
        Some(wake)
    }

    /// The earliest wake in the calendar, its bucket sorted.
    fn first_near(&mut self) -> Option<(u64, usize)> {
        self.scan = self.scan.max(self.floor);
        let end = self.floor.saturating_add(SPAN);
        while self.scan < end && self.buckets[(self.scan % SPAN) as usize].is_empty() {
            self.scan += 1;
        }
        if self.scan == end {
            return None;
        }
        let at = self.scan;
        let bucket = &mut self.buckets[(at % SPAN) as usize];
        if self.sorted != Some(at) {
            bucket.sort_unstable_by(|a, b| b.cmp(a));
            self.sorted = Some(at);
        }
        bucket.last().map(|&node| (at, node))
    }
}
