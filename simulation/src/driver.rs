//! One simulated node: `protocol::Node` driven by `Node::drive`, the loop the production runtime
//! calls too (feed an event, drain every action, feed signatures back after the drain), woken by
//! the agenda at its next deadline or arrival, with simulated I/O. Answers from the database and
//! the price sources belong to the process that asked: a crash loses them.

use std::rc::Rc;

use protocol::journal;
use protocol::{
    Action, Clock, Event, MessageRef, Node, Prefetch, PriceId, Signature, WriteOutcome,
};

use crate::agenda::{Call, Job};
use crate::byzantine::Adversary;
use crate::dice::Dice;
use crate::recording::Recorder;
use crate::scenario::EPOCH_MS;
use crate::world::Shared;

pub struct Driver {
    node: Node,
    /// With `--record`: the production flight recorder. Boxed, as is whatever a wake seldom
    /// reads: thousands of drivers are woken in turn, and each touches few cache lines.
    recorder: Option<Box<Recorder>>,
    /// The node's time, kept from simulated time (its monotonic clock) as production keeps it.
    clock: Clock,
    peers: usize,
    /// The network's count of link changes when `peers` was counted.
    peers_counted_at: Option<u64>,
    io: NodeIo,
}

/// What the node's actions are carried out with: the simulated network, database and sources.
struct NodeIo {
    shared: Rc<Shared>,
    index: usize,
    incarnation: u64,
    dice: Box<Dice>,
    adversary: Option<Box<Adversary>>,
    honest: bool,
    /// Simulated time of the event being driven.
    now: u64,
    /// Sender of the gossip being driven, for the trace (the node itself is not told).
    gossip_from: usize,
}

/// The processor's prefetch where there is one in safe reach (x86-64), else nothing.
pub struct Prefetcher;

impl Prefetch for Prefetcher {
    fn fetch<T>(&self, part: &T) {
        #[cfg(target_arch = "x86_64")]
        safe_arch::prefetch_t0(part);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = part;
    }
}

/// Starts node `index` and wakes it now. Each start is a fresh process: nothing survives a crash
/// but the key.
pub fn start(shared: &Rc<Shared>, index: usize) -> Driver {
    let incarnation = {
        let mut world = shared.world();
        world.incarnations[index] += 1;
        let world = &mut *world;
        world
            .fabric
            .set_up(&mut world.agenda, shared.now(), index, true);
        world.incarnations[index]
    };
    let scenario = &shared.scenario;
    let key = scenario.keys[index].clone();
    let seed = scenario.params.seed ^ (index as u64) << 24 ^ incarnation << 48;
    let start = shared.now();
    let clock = Clock::new(wall_clock(shared, index, start), start);
    let node = Node::new_with_signature_check(
        scenario.config.clone(),
        key.address(),
        seed,
        clock.now(start),
        shared.check.clone(),
    )
    .expect("the scenario's config is valid");
    let adversary = scenario.attacks.get(&index).map(|attacks| {
        let honest = (0..scenario.params.nodes)
            .filter(|n| !scenario.is_byzantine(*n))
            .map(|n| scenario.keys[n].address())
            .collect();
        Box::new(Adversary::new(
            attacks.clone(),
            Dice::new(seed, "adversary", index as u64),
            key.clone(),
            scenario.outsider.clone(),
            honest,
        ))
    });
    let recorder = scenario.params.record.then(|| {
        let start = journal::Start {
            config: (*scenario.config).clone(),
            me: key.address(),
            seed,
            started_at: clock.now(start),
        };
        Box::new(Recorder::new(&mut shared.world().recordings, index, start))
    });
    shared.world().agenda.wake(index, start);
    Driver {
        node,
        recorder,
        clock,
        peers: usize::MAX,
        peers_counted_at: None,
        io: NodeIo {
            honest: adversary.is_none(),
            adversary,
            dice: Box::new(Dice::new(seed, "node", index as u64)),
            shared: shared.clone(),
            index,
            incarnation,
            now: start,
            gossip_from: index,
        },
    }
}

/// Node `index`'s wall clock at simulated time `sim_ms`: unix time with its skew and steps.
fn wall_clock(shared: &Shared, index: usize, sim_ms: u64) -> u64 {
    (EPOCH_MS + sim_ms).saturating_add_signed(shared.world().wall_offsets[index])
}

impl Driver {
    /// Feeds everything due by `now`, then asks the agenda for a wake at the next thing due.
    pub fn wake(&mut self, now: u64) {
        self.feed_due(now);
        self.wake_when_due(now);
    }

    /// Has the state a wake reads first fetched, without reading it: the node's, then this
    /// driver's own.
    pub fn prefetch(&self) {
        self.node.prefetch(&Prefetcher);
        Prefetcher.fetch(&self.io);
        Prefetcher.fetch(&self.clock);
    }

    /// Has what the node's lines point to fetched; reads those lines, so it follows
    /// [`Driver::prefetch`] by a while.
    pub fn prefetch_pointed(&self) {
        self.node.prefetch_pointed(&Prefetcher);
    }

    /// Whether answers addressed to `incarnation` of this node are still awaited.
    pub fn is(&self, incarnation: u64) -> bool {
        self.io.incarnation == incarnation
    }

    /// The node's next deadline, in simulated time.
    fn deadline(&self) -> Option<u64> {
        let (at, _) = self.node.poll_timeout()?;
        Some(self.clock.mono_at(at))
    }

    /// Asks the agenda to wake the node at the earliest of: its deadline, its adversary's next
    /// move (now, if one is past). The agenda wakes it for arrivals.
    fn wake_when_due(&self, now: u64) {
        let deadline = self.deadline();
        let unprompted = self
            .io
            .adversary
            .as_ref()
            .and_then(|adversary| adversary.next_unprompted());
        let at = [deadline, unprompted]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX / 2);
        self.io
            .shared
            .world()
            .agenda
            .wake(self.io.index, at.max(now));
    }

    /// Follows the node's wall clock as production's loop does (`protocol::Clock`), then asks for
    /// a wake at the node's next deadline, which may have moved. Called on the supervisor's ticks,
    /// not on wakes: following a clock that slews back depends on how often it is followed, and a
    /// run must not depend on how often a node is woken.
    pub fn follow_wall_clock(&mut self, now: u64) {
        let wall = wall_clock(&self.io.shared, self.io.index, now);
        self.clock.follow(wall, now);
        self.wake_when_due(now);
    }

    /// Feeds everything due by `now`: local answers, arrivals, peer changes, timers.
    fn feed_due(&mut self, now: u64) {
        let local = std::mem::take(&mut self.io.shared.world().local[self.io.index]);
        for event in local {
            self.feed(now, event);
        }
        loop {
            let arrival = {
                let world = &mut *self.io.shared.world();
                (world.fabric).take_arrival(&mut world.agenda, now, self.io.index)
            };
            let Some(arrival) = arrival else { break };
            let message = MessageRef {
                token: arrival.token,
            };
            self.io.gossip_from = arrival.from;
            let bytes = arrival.packet.bytes.clone();
            self.feed(now, Event::Gossip { message, bytes });
        }
        let counted = {
            let world = self.io.shared.world();
            let links_changed = world.fabric.links_changed;
            (self.peers_counted_at != Some(links_changed))
                .then(|| (world.fabric.reachable_peers(self.io.index), links_changed))
        };
        if let Some((peers, links_changed)) = counted {
            self.peers_counted_at = Some(links_changed);
            if peers != self.peers {
                self.peers = peers;
                self.feed(now, Event::PeersChanged { count: peers });
            }
        }
        if let Some(adversary) = &mut self.io.adversary {
            for bytes in adversary.unprompted(now) {
                let world = &mut *self.io.shared.world();
                world
                    .fabric
                    .publish(&mut world.agenda, now, self.io.index, bytes);
            }
        }
        if self.deadline().is_some_and(|at| at <= now) {
            self.feed(now, Event::TimerDue);
        }
    }

    /// Feeds one event to the node through the loop both drivers share, recorded with `--record`.
    fn feed(&mut self, now: u64, event: Event) {
        self.io.now = now;
        let node_now = self.clock.now(now);
        match &mut self.recorder {
            Some(recorder) => {
                recorder.drive(&mut self.node, node_now, event, &mut self.io);
                recorder.keep(&mut self.io.shared.world().recordings, &self.node);
            }
            None => self.node.drive(node_now, event, &mut self.io),
        }
    }

    /// The run ends: the recording checks its last events, as a node that stops does.
    pub fn finish(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            recorder.finish(&mut self.io.shared.world().recordings);
        }
    }
}

impl protocol::Io for NodeIo {
    fn fed(&mut self, event: &Event) {
        let (now, index, from) = (self.now, self.index, self.gossip_from);
        self.shared.world().observer.event(now, index, event, from);
    }

    fn sign(&mut self, id: PriceId, digest: &[u8; 32]) -> Signature {
        let sign = Action::Sign {
            id,
            digest: *digest,
        };
        let (now, index, honest) = (self.now, self.index, self.honest);
        self.shared
            .world()
            .observer
            .action(now, index, honest, &sign);
        self.shared.scenario.keys[self.index].sign(digest)
    }

    fn execute(&mut self, action: Action) {
        let (now, index, honest) = (self.now, self.index, self.honest);
        self.shared
            .world()
            .observer
            .action(now, index, honest, &action);
        self.carry_out(now, action);
    }
}

impl NodeIo {
    fn carry_out(&mut self, now: u64, action: Action) {
        let index = self.index;
        match action {
            Action::FetchPrices => {
                let latency = self.dice.range(20, 800);
                let bias = self
                    .shared
                    .scenario
                    .attacks
                    .get(&index)
                    .map_or(0, |a| Adversary::lie_bps(a));
                let down = now < self.shared.world().exchanges_down_until[index];
                let answered = if down {
                    Vec::new()
                } else {
                    self.shared.market.quotes(now, bias, &mut self.dice)
                };
                let answer = Job::Answer {
                    node: index,
                    incarnation: self.incarnation,
                    event: Box::new(Event::PricesFetched { answered }),
                };
                self.shared.world().agenda.schedule(now + latency, answer);
            }
            // Answered at once by `sign`; `Node::drive` never passes it here.
            Action::Sign { .. } => {}
            Action::Broadcast { why, bytes, .. } => {
                let out = match &mut self.adversary {
                    Some(adversary) => adversary.outgoing(now, why, bytes),
                    None => vec![bytes],
                };
                let world = &mut *self.shared.world();
                for bytes in out {
                    world.fabric.publish(&mut world.agenda, now, index, bytes);
                }
            }
            Action::Verdict { message, verdict } => {
                let world = &mut *self.shared.world();
                world
                    .fabric
                    .verdict(&mut world.agenda, now, index, message.token, verdict);
            }
            Action::Heartbeat => {
                let address = self.shared.scenario.keys[self.index].address();
                let timed_out = Event::DatabaseUnreachable;
                self.database(timed_out, move |db, now| {
                    db.heartbeat(now, address)
                        .err()
                        .map(|_| Event::DatabaseUnreachable)
                });
            }
            Action::ReadDatabase { stored_since } => {
                let timed_out = Event::DatabaseUnreachable;
                self.database(timed_out, move |db, now| {
                    Some(match db.read(now, stored_since) {
                        Ok((heartbeats, stored)) => Event::DatabaseRead { heartbeats, stored },
                        Err(_) => Event::DatabaseUnreachable,
                    })
                });
            }
            Action::Write(price) => {
                if self
                    .adversary
                    .as_ref()
                    .is_some_and(|adversary| adversary.silent_writer())
                {
                    return;
                }
                let id = price.message.body.id;
                let lost_ack = self.dice.chance(self.shared.scenario.database.lost_ack);
                let timed_out = Event::WriteFinished {
                    id,
                    outcome: WriteOutcome::Failed,
                };
                self.database(timed_out, move |db, now| {
                    let outcome = match db.insert(now, *price) {
                        // Applied, but the answer is lost: the writer sees a failure.
                        Ok(WriteOutcome::Inserted) if lost_ack => WriteOutcome::Failed,
                        Ok(outcome) => outcome,
                        Err(_) => WriteOutcome::Failed,
                    };
                    Some(Event::WriteFinished { id, outcome })
                });
            }
            Action::Report(_) => {}
        }
    }

    /// Sends `op` to the database, which runs it after a request's latency and answers after a
    /// reply's latency; a call the database does not answer is answered `timed_out` after the
    /// database timeout, as the production store does.
    fn database(
        &mut self,
        timed_out: Event,
        op: impl FnOnce(&mut crate::database::Database, u64) -> Option<Event> + 'static,
    ) {
        let (lo, hi) = self.shared.scenario.database.latency_ms;
        let there = self.dice.range(lo, hi);
        let back_ms = self.dice.range(lo, hi);
        let timeout = self.shared.scenario.config.database_timeout_ms;
        let call = Call {
            is_write: matches!(timed_out, Event::WriteFinished { .. }),
            op: Box::new(op),
            timed_out,
            back_ms,
            gives_up_after_ms: timeout.saturating_sub(there),
        };
        let job = Job::AtDatabase {
            node: self.index,
            incarnation: self.incarnation,
            call: Box::new(call),
        };
        self.shared.world().agenda.schedule(self.now + there, job);
    }
}

/// A call reaches the database at `now`: a hung database never answers (the caller times out); a
/// writer armed to crash dies with its row applied and the answer not yet back.
pub fn at_database(shared: &Shared, now: u64, node: usize, incarnation: u64, call: Call) {
    let world = &mut *shared.world();
    let answer = |event| Job::Answer {
        node,
        incarnation,
        event: Box::new(event),
    };
    if world.database.hangs(now) {
        let at = now + call.gives_up_after_ms;
        return world.agenda.schedule(at, answer(call.timed_out));
    }
    let event = (call.op)(&mut world.database, now);
    if call.is_write
        && let Some(down_ms) = world.crash_next_writer.take()
    {
        world.kill_requests.push((node, down_ms));
        world.writer_crashed_at = Some(now);
        return;
    }
    if let Some(event) = event {
        world.agenda.schedule(now + call.back_ms, answer(event));
    }
}
