//! A deterministic simulation of an oracle network: thousands of `protocol::Node`s on madsim, with
//! a gossip mesh, a PostgreSQL-like database host, price sources, crashes, partitions and Byzantine
//! members, all drawn from one seed. Every run checks that each price id is stored at most once
//! with a quorum of valid signatures, that nothing stays unstored after the faults end, and that a
//! seed replays to the same trace.
//!
//! madsim simulates only in builds with `--cfg madsim` (set in the workspace's
//! `.cargo/config.toml`); without it this crate is empty and the test harness says why.
#![cfg(madsim)]

mod byzantine;
pub mod check;
mod database;
mod dice;
mod driver;
mod market;
mod network;
mod observe;
pub mod scenario;
mod world;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

pub use check::{Report, Violation};
pub use scenario::{Params, Profile, Scenario, Variant};

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
    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(params.seed, madsim::Config::default());
    let scenario = Scenario::new(params.clone());
    let check: Arc<dyn protocol::SignatureCheck> = match params.variant {
        Variant::SignsWithoutVerifying => Arc::new(TrustEverything),
        _ => Arc::new(SharedRecovery::default()),
    };
    let shared = runtime.block_on(async move { Arc::new(Shared::new(scenario, check)) });
    let supervised = shared.clone();
    let panicked = catch_unwind(AssertUnwindSafe(|| runtime.block_on(supervise(supervised))));
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
    let (mut report, violations) = check::check(&shared.scenario, &shared.market, &world, end);
    report.wall_s = wall.elapsed().as_secs_f64();
    report.speedup = report.simulated_s / report.wall_s;
    report.peak_memory_mb = check::peak_memory_mb();
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
    drop(runtime);
    Outcome {
        report,
        violations,
        story,
    }
}

/// Starts every node, then applies the scenario's faults on schedule until the end.
async fn supervise(shared: Arc<Shared>) {
    let handle = madsim::runtime::Handle::current();
    let n = shared.scenario.params.nodes;
    let nodes: Vec<_> = (0..n)
        .map(|i| {
            let shared = shared.clone();
            handle
                .create_node()
                .name(format!("n{i}"))
                .init(move || driver::run(shared.clone(), i))
                .build()
                .id()
        })
        .collect();
    let mut faults = shared.scenario.faults.iter().peekable();
    let mut restarts: Vec<(u64, usize)> = Vec::new();
    let end = shared.scenario.params.duration_ms;
    loop {
        let now = shared.now();
        if now >= end {
            break;
        }
        let mut kills = std::mem::take(&mut shared.world().kill_requests);
        while let Some((_, fault)) = faults.next_if(|(at, _)| *at <= now) {
            let mut world = shared.world();
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
                    world.fabric.partition(&side, *one_way);
                }
                Fault::Heal => world.fabric.heal(),
                Fault::Crash { node, down_ms } => kills.push((*node, *down_ms)),
                Fault::CrashNextWriter { down_ms } => world.crash_next_writer = Some(*down_ms),
                Fault::DatabaseDown { until } => world.database.outage(*until),
                Fault::DatabaseHang { until } => world.database.hang(*until),
                Fault::ClockStep { node, by_ms } => world.wall_offsets[*node] += by_ms,
                Fault::DelaySpike { until, extra_ms } => {
                    world.fabric.delay_spike(*until, *extra_ms)
                }
            }
        }
        for (node, down_ms) in kills {
            handle.kill(nodes[node]);
            let mut world = shared.world();
            world.fabric.set_up(node, false);
            world.local[node].clear();
            restarts.push((now + down_ms, node));
        }
        restarts.retain(|&(at, node)| {
            if at <= now {
                handle.restart(nodes[node]);
            }
            at > now
        });
        madsim::time::sleep(Duration::from_millis(TICK_MS)).await;
    }
    // The run is over: stop every node so the executor drops its tasks and their state.
    shared.world().fabric.release();
    nodes.iter().for_each(|&node| handle.kill(node));
    madsim::time::sleep(Duration::from_millis(1)).await;
}
