//! The run's one clock: every happening still to come (a node waking, a gossip copy or an answer
//! reaching a node, a request reaching the database, the supervisor's tick) is a job at a simulated
//! millisecond. Jobs run in time order; within a millisecond, answers, requests and ticks first, in
//! the order they were scheduled, then the nodes' wakes in the order of the nodes: a node is woken
//! at every millisecond a copy arrives at it, and takes them in the order they were sent. So one
//! seed gives one order, and a wake that finds nothing due changes nothing: how often a node is
//! woken is not part of the run. Nothing runs between jobs and no job waits on another.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use protocol::Event;

use crate::calendar::Calendar;
use crate::database::Database;
use crate::network::Arrival;

/// Something that happens at a moment. Small, as the queue moves its entries on every push and
/// pop: what is large rides in a box.
pub enum Job {
    /// Node `node` feeds what is due and computes its next wake.
    Wake { node: usize },
    /// An answer from the node's own I/O (a price source, the database) reaches it.
    Answer {
        node: usize,
        incarnation: u64,
        event: Box<Event>,
    },
    /// A request from the node reaches the database.
    AtDatabase {
        node: usize,
        incarnation: u64,
        call: Box<Call>,
    },
    /// The supervisor applies faults and restarts.
    Tick,
}

/// What a call does at the database at a moment, and the answer it sends back, if any.
pub type Operation = Box<dyn FnOnce(&mut Database, u64) -> Option<Event>>;

/// A database call in flight: what it does there, and how its answer comes back.
pub struct Call {
    pub op: Operation,
    /// The answer when the database does not answer within the timeout.
    pub timed_out: Event,
    /// How long the answer takes to come back.
    pub back_ms: u64,
    /// How long after arriving a hung database's caller gives up.
    pub gives_up_after_ms: u64,
    pub is_write: bool,
}

/// Jobs other than wakes by (time, order of scheduling); wakes by (time, node); copies on their
/// way by (time, receiver, token).
#[derive(Default)]
pub struct Agenda {
    queue: BinaryHeap<Reverse<(u64, u64, Unordered<Job>)>>,
    scheduled: u64,
    wakes: Calendar<usize>,
    /// Kept here, not by receiver: a send appends to its millisecond's bucket without touching
    /// the receiver's state, and a millisecond's arrivals at one node lie side by side.
    arrivals: Calendar<Arrival>,
    /// Each node's next scheduled wake (u64::MAX: none); earlier wakes replace later ones, and a
    /// replaced wake is skipped when its time comes.
    wake_at: Vec<u64>,
    /// The latest of each node's entries in `wakes`, if any. A node woken by an arrival asks
    /// again for its next deadline, most often the one it asked for before: that entry is still
    /// queued and is not queued twice (the queue held some 17 entries per node otherwise).
    latest_queued: Vec<Option<u64>>,
}

impl Agenda {
    pub fn new(nodes: usize) -> Agenda {
        Agenda {
            wake_at: vec![u64::MAX; nodes],
            latest_queued: vec![None; nodes],
            ..Agenda::default()
        }
    }

    pub fn schedule(&mut self, at: u64, job: Job) {
        self.scheduled += 1;
        self.queue
            .push(Reverse((at, self.scheduled, Unordered(job))));
    }

    /// Wakes `node` at `at` unless it already wakes by then.
    pub fn wake(&mut self, node: usize, at: u64) {
        if at < self.wake_at[node] {
            self.wake_at[node] = at;
            let latest = &mut self.latest_queued[node];
            if *latest != Some(at) {
                self.wakes.push(at, node);
                *latest = (*latest).max(Some(at));
            }
        }
    }

    /// Forgets a node's wake: it has stopped.
    pub fn forget_wake(&mut self, node: usize) {
        self.wake_at[node] = u64::MAX;
    }

    /// A copy reaches its receiver at `at`, which is woken then.
    pub fn deliver(&mut self, at: u64, arrival: Arrival) {
        self.arrivals.push(at, arrival);
    }

    /// The next copy reaching `node` at `now`, in the order they were sent. A node woken takes
    /// every one (a stopped node's are dropped), or the agenda would wake it for them again. A
    /// copy to a process that has stopped stays queued until its time, and wakes a restarted
    /// one then for nothing: a wake that finds nothing due changes nothing.
    pub fn arrival(&mut self, now: u64, node: usize) -> Option<Arrival> {
        match self.arrivals.peek() {
            Some((at, arrival)) if at == now && arrival.to == node => {
                self.arrivals.pop().map(|(_, arrival)| arrival)
            }
            _ => None,
        }
    }

    /// The next job due, and its time; wakes that were replaced are skipped.
    pub fn next(&mut self) -> Option<(u64, Job)> {
        loop {
            let job_at = self.queue.peek().map(|Reverse((at, ..))| *at);
            let wake = self.wakes.peek().map(|(at, &node)| (at, node));
            let arrival = self.arrivals.peek().map(|(at, arrival)| (at, arrival.to));
            let first = match (wake, arrival) {
                (Some(wake), Some(arrival)) => Some(wake.min(arrival)),
                (wake, arrival) => wake.or(arrival),
            };
            if job_at.is_some_and(|job_at| first.is_none_or(|(at, _)| job_at <= at)) {
                let Reverse((at, _, Unordered(job))) = self.queue.pop()?;
                self.advance(at);
                return Some((at, job));
            }
            let (at, node) = first?;
            self.advance(at);
            if wake == first {
                self.wakes.pop();
                if self.latest_queued[node] == Some(at) {
                    // The queue is in time order: nothing of this node's is left in it.
                    self.latest_queued[node] = None;
                }
            }
            if self.wake_at[node] == at || arrival == first {
                // Woken, the node asks again for a wake at its next deadline.
                self.wake_at[node] = u64::MAX;
                return Some((at, Job::Wake { node }));
            }
        }
    }

    /// A node likely to be woken after `node` within this millisecond: a hint, never a promise.
    pub fn likely_next(&self, node: usize) -> Option<usize> {
        let wake = self.wakes.at_floor().last().copied();
        let arrival = (self.arrivals.at_floor().iter().rev())
            .map(|arrival| arrival.to)
            .find(|&to| to != node);
        match (wake, arrival) {
            (Some(wake), Some(arrival)) => Some(wake.min(arrival)),
            (wake, arrival) => wake.or(arrival),
        }
    }

    fn advance(&mut self, now: u64) {
        self.wakes.advance(now);
        self.arrivals.advance(now);
    }
}

/// A value carried in a queue ordered by the fields beside it: it never takes part in the order.
#[derive(Debug)]
pub struct Unordered<T>(pub T);
impl<T> PartialEq for Unordered<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Unordered<T> {}
impl<T> PartialOrd for Unordered<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Unordered<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
