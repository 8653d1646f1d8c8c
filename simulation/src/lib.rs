//! A deterministic simulation of an oracle network: thousands of `protocol::Node`s on one
//! discrete-event loop (`agenda`), with a gossip mesh, a PostgreSQL-like database host, price
//! sources, crashes, partitions and Byzantine members, all drawn from one seed. Every run checks
//! that each price id is stored at most once with a quorum of valid signatures, that nothing stays
//! unstored after the faults end, and that a seed replays to the same trace.

mod agenda;
mod byzantine;
pub mod calendar;
pub mod check;
mod database;
mod dice;
mod driver;
mod hashed;
mod market;
mod network;
mod observe;
mod recording;
pub mod results;
pub mod scenario;
mod world;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

pub use check::{Report, Violation};
pub use scenario::{Fixed, Params, Profile, Scenario, Staged, Variant};

use crate::agenda::Job;
use crate::driver::Driver;
use crate::scenario::Fault;
use crate::world::{Shared, SharedRecovery, TrustEverything};

/// How often the supervisor applies faults and restarts.
const TICK_MS: u64 = 100;

/// What a run found.
pub struct Outcome {
    pub report: Report,
    pub violations: Vec<Violation>,
    /// The first violation's price's first and last steps, or the run's last steps.
    pub story: Vec<String>,
}

/// Runs one simulation to its end and checks it.
pub fn run(params: Params) -> Outcome {
    let wall = std::time::Instant::now();
    check::reset_peak_memory();
    let scenario = Scenario::new(params.clone());
    let check: Arc<dyn protocol::SignatureCheck> = match params.variant {
        Variant::SignsWithoutVerifying => Arc::new(TrustEverything),
        _ => Arc::new(SharedRecovery::default()),
    };
    let shared = Rc::new(Shared::new(scenario, check));
    let panicked = catch_unwind(AssertUnwindSafe(|| supervise(&shared)));
    let end = params.duration_ms;
    if let Err(payload) = panicked {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_owned());
        shared.world().observer.panics.push(message);
    }
    let world = shared.world();
    let (mut report, mut violations) = check::check(&shared.scenario, &shared.market, &world, end);
    report.wall_s = wall.elapsed().as_secs_f64();
    report.speedup = report.simulated_s / report.wall_s;
    report.peak_memory_mb = check::peak_memory_mb();
    // After the wall time: replaying is the check's cost, not the recorder's.
    if params.record {
        report.recording_bytes = world.recordings.iter().map(|r| r.event_bytes as u64).sum();
        report.recording_snapshots = world
            .recordings
            .iter()
            .filter(|r| r.continues.is_some())
            .count();
        for detail in recording::verify(&world.recordings, &shared.check) {
            violations.push(Violation {
                invariant: "every node's flight recording replays exactly",
                detail,
                id: None,
            });
        }
    }
    let story = world
        .observer
        .story(violations.first().and_then(|v| v.id))
        .iter()
        .map(|s| {
            let id = s.id.map(|id| format!(" {id}")).unwrap_or_default();
            format!(
                "{:>10.3} s  n{:<5} {}{} ({})",
                s.at as f64 / 1e3,
                s.node,
                s.what,
                id,
                s.detail
            )
        })
        .collect();
    drop(world);
    Outcome {
        report,
        violations,
        story,
    }
}

/// Starts every node, then runs the agenda to the end: the nodes' wakes and answers, and every
/// `TICK_MS` the scenario's faults and restarts.
fn supervise(shared: &Rc<Shared>) {
    let n = shared.scenario.params.nodes;
    // Boxed: whether a node runs is read here, from a dense array, without touching its state,
    // which can then be fetched ahead.
    let mut nodes: Vec<Option<Box<Driver>>> = (0..n)
        .map(|i| Some(Box::new(driver::start(shared, i))))
        .collect();
    shared.world().agenda.schedule(0, Job::Tick);
    let mut faults = shared.scenario.faults.iter().peekable();
    let mut restarts: Vec<(u64, usize)> = Vec::new();
    let end = shared.scenario.params.duration_ms;
    // Only a stepped wall clock moves away from the node's: without steps nothing is followed.
    let clocks_step =
        (shared.scenario.faults.iter()).any(|(_, f)| matches!(f, Fault::ClockStep { .. }));
    loop {
        let Some((now, job)) = shared.world().agenda.next() else {
            break;
        };
        if now >= end {
            break;
        }
        shared.advance(now);
        match job {
            Job::Wake { node } => {
                // While this node runs, what the next one reads first is fetched: each of
                // thousands of nodes has gone cold by its turn, and so the misses overlap.
                let next = shared.world().agenda.likely_next(node);
                if let Some(Some(next)) = next.map(|next| &nodes[next]) {
                    next.prefetch();
                }
                match &mut nodes[node] {
                    Some(driver) => driver.wake(now),
                    // Copies still on their way to a stopped process are lost with it.
                    None => while shared.world().agenda.arrival(now, node).is_some() {},
                }
                // By now the next node's lines have arrived: what they point to can be read, and
                // is fetched in turn.
                if let Some(Some(next)) = next.map(|next| &nodes[next]) {
                    next.prefetch_pointed();
                }
            }
            Job::Answer {
                node,
                incarnation,
                event,
            } => {
                if nodes[node].as_ref().is_some_and(|d| d.is(incarnation)) {
                    let world = &mut *shared.world();
                    world.local[node].push(*event);
                    world.agenda.wake(node, now);
                }
            }
            Job::AtDatabase {
                node,
                incarnation,
                call,
            } => {
                if nodes[node].as_ref().is_some_and(|d| d.is(incarnation)) {
                    driver::at_database(shared, now, node, incarnation, *call);
                }
            }
            Job::Tick => {
                apply_faults(shared, now, &mut faults, &mut nodes, &mut restarts);
                if clocks_step {
                    nodes
                        .iter_mut()
                        .flatten()
                        .for_each(|driver| driver.follow_wall_clock(now));
                }
                let agenda = &mut shared.world().agenda;
                agenda.schedule(now + TICK_MS, Job::Tick);
                if shared.scenario.params.idle_wakes {
                    (0..n)
                        .for_each(|node| agenda.wake(node, now + 1 + (node as u64 * 37) % TICK_MS));
                }
            }
        }
    }
    nodes
        .iter_mut()
        .flatten()
        .for_each(|driver| driver.finish());
}

/// Applies the faults due by `now`, kills the nodes that must die and restarts those due back.
fn apply_faults<'a>(
    shared: &Rc<Shared>,
    now: u64,
    faults: &mut std::iter::Peekable<impl Iterator<Item = &'a (u64, Fault)>>,
    nodes: &mut [Option<Box<Driver>>],
    restarts: &mut Vec<(u64, usize)>,
) {
    let mut kills = std::mem::take(&mut shared.world().kill_requests);
    while let Some((_, fault)) = faults.next_if(|(at, _)| *at <= now) {
        let world = &mut *shared.world();
        match fault {
            Fault::Partition {
                side,
                one_way,
                isolate_writer,
            } => {
                let side = match (isolate_writer, world.observer.writer) {
                    (true, Some(writer)) => [writer].into(),
                    _ => side.clone(),
                };
                world
                    .fabric
                    .partition(&mut world.agenda, now, &side, *one_way);
            }
            Fault::Heal => world.fabric.heal(&mut world.agenda, now),
            Fault::Crash { node, down_ms } => kills.push((*node, *down_ms)),
            Fault::CrashNextWriter { down_ms } => world.crash_next_writer = Some(*down_ms),
            Fault::DatabaseDown { until } => world.database.outage(*until),
            Fault::DatabaseHang { until } => world.database.hang(*until),
            Fault::ClockStep { node, by_ms } => world.wall_offsets[*node] += by_ms,
            Fault::DelaySpike { until, extra_ms } => world.fabric.delay_spike(*until, *extra_ms),
            Fault::ExchangesDown { nodes, until } => {
                nodes
                    .iter()
                    .for_each(|&n| world.exchanges_down_until[n] = *until);
            }
        }
    }
    for (node, down_ms) in kills {
        // A node already down stays down until its first restart.
        if nodes[node].take().is_none() {
            continue;
        }
        let world = &mut *shared.world();
        world.agenda.forget_wake(node);
        world.fabric.set_up(&mut world.agenda, now, node, false);
        world.local[node].clear();
        world.last_down_at[node] = Some(now);
        restarts.push((now + down_ms, node));
    }
    restarts.retain(|&(at, node)| {
        if at <= now && nodes[node].is_none() {
            nodes[node] = Some(Box::new(driver::start(shared, node)));
        }
        at > now
    });
}
