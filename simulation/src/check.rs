//! The invariants every run must hold, checked against the database's rows and the observer's
//! timelines, and the report a person reads.

use std::collections::BTreeMap;

use protocol::PriceId;
use serde::Serialize;

use crate::market::Market;
use crate::scenario::{EPOCH_MS, Fault, PROMISED_QUORUM, Scenario, Staged};
use crate::world::World;

/// The invariants a deliberately broken build must break, named once for the checker and for
/// [`crate::Variant::must_break`].
pub const STORED_ONCE: &str = "each price id is stored at most once";
pub const ROWS_AUDITED: &str = "every stored row passes the audit";
pub const PROMISED_SIGNERS: &str = "every stored row carries at least 3 distinct signers";

/// An invariant that did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
    /// The price it concerns, if one.
    #[serde(skip)]
    pub id: Option<PriceId>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

impl Percentiles {
    fn of(mut samples: Vec<u64>) -> Percentiles {
        samples.sort_unstable();
        let at = |q: usize| {
            samples
                .get((samples.len() * q / 100).min(samples.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        Percentiles {
            p50_ms: at(50),
            p99_ms: at(99),
            max_ms: samples.last().copied().unwrap_or(0),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub faults: String,
    pub variant: String,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub speedup: f64,
    /// Peak resident memory during the run (in a sweep, at least what earlier runs left resident).
    pub peak_memory_mb: u64,
    pub published: u64,
    pub reached_quorum: usize,
    pub stored: usize,
    pub insert_attempts: u64,
    pub duplicate_inserts_blocked: u64,
    pub expired_unstored: u64,
    pub publication_to_quorum: Percentiles,
    pub publication_to_storage: Percentiles,
    pub messages: u64,
    pub bytes: u64,
    pub messages_per_stored_price: f64,
    pub bytes_per_stored_price: f64,
    pub messages_per_stored_price_per_node: f64,
    pub most_messages_one_node_sent: u64,
    pub invalid_dropped: BTreeMap<String, u64>,
    pub ignored: BTreeMap<String, u64>,
    pub lost: u64,
    pub duplicated: u64,
    pub cut_by_partition: u64,
    pub links_pruned_for_misbehaviour: u64,
    /// Publications refused by the publisher's own duplicate cache, as gossipsub refuses them.
    pub refused_duplicates: u64,
    pub partitions: usize,
    pub crashes: usize,
    pub database_outages: usize,
    pub database_hangs: usize,
    pub clock_steps: usize,
    /// Nodes cut off from the exchanges for a while, summed over the outages.
    pub nodes_cut_off_from_exchanges: usize,
    /// Times an honest node penalised an honest peer (each one breaks an invariant).
    pub honest_penalties: usize,
    pub byzantine_members: usize,
    /// Each Byzantine member and what it does.
    pub attacks: BTreeMap<String, String>,
    pub liars: usize,
    pub calm_from_s: f64,
    /// After the last fault: longest from (quorum, or the calm if later) to storage.
    pub longest_store_after_calm_ms: u64,
    pub liveness_bound_ms: u64,
    pub furthest_from_truth_bps: u64,
    /// The furthest the read API's aggregate (`protocol::aggregate`, over three price intervals)
    /// was from the truth at its median's observation, sampled every 10 s.
    pub furthest_aggregate_from_truth_bps: u64,
    /// Longest the newest stored price stayed further from the truth than `deviation_bps`.
    pub longest_stale_ms: u64,
    pub deviation_bps: u32,
    pub truth_bound_bps: u64,
    pub trace_hash: String,
    pub steps: u64,
    /// With `--record`: the bytes of events every node's flight recorder wrote, together (its
    /// starts and snapshots aside: the simulation rotates far more often than production).
    pub recording_bytes: u64,
    /// Recordings that began from a snapshot, each checked against the state its predecessor's
    /// replay ended in.
    pub recording_snapshots: usize,
    /// Only for a staged fault (`crate::Staged`): how storage went on after it.
    pub recovery: Option<Recovery>,
}

/// Storage after a staged fault, from the moment the writer died or the partition healed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    pub from_s: f64,
    /// Until the next row was stored.
    pub first_store_ms: Option<u64>,
    /// Prices from honest origins at quorum by then but not yet stored: the backlog.
    pub backlog: usize,
    /// Until the last of the backlog was stored.
    pub backlog_stored_ms: Option<u64>,
    /// Of the backlog, never stored.
    pub backlog_lost: usize,
    /// The longest any price took from quorum to storage, of those at quorum from the moment the
    /// fault began (`Staged::AT_MS`) on: what the fault cost while it lasted, too.
    pub slowest_storage_ms: u64,
}

/// The furthest `protocol::aggregate` over the prices stored within three price intervals (the
/// read API's default window) was from the truth, sampled every 10 s: what a consumer of
/// `/prices/aggregate` would have read, against the single stored prices above.
fn furthest_aggregate_bps(
    samples: &mut [(u64, protocol::Sample)],
    market: &Market,
    config: &protocol::Config,
    end: u64,
) -> u64 {
    samples.sort_unstable_by_key(|(at, _)| *at);
    let window = 3 * config.price_interval_ms;
    let mut furthest = 0;
    for t in (0..=end).step_by(10_000) {
        let within = samples
            .iter()
            .take_while(|(at, _)| *at <= t)
            .filter(|(_, s)| s.observed_at_ms + window >= t)
            .map(|(_, s)| *s);
        if let Some(aggregate) = protocol::aggregate(within) {
            let median = aggregate.median;
            furthest = furthest.max(market.distance_bps(median.price, median.observed_at_ms));
        }
    }
    furthest
}

/// The longest stretch, sampled each second from the first storage on, during which the newest
/// stored price (by observation) was further from the truth than `deviation_bps`: what a consumer
/// reading the latest price would have been served while the market had moved on.
fn longest_stale_ms(
    stored: &mut [(u64, u64, protocol::Price)],
    market: &Market,
    deviation_bps: u32,
    end: u64,
) -> u64 {
    stored.sort_unstable_by_key(|&(at, ..)| at);
    let (mut next, mut newest, mut stale_since, mut longest) = (0, None, None, 0);
    for t in (0..=end).step_by(1_000) {
        while let Some(&(at, observed, price)) = stored.get(next)
            && at <= t
        {
            if newest.is_none_or(|(o, _)| observed > o) {
                newest = Some((observed, price));
            }
            next += 1;
        }
        let stale =
            newest.is_some_and(|(_, p)| market.distance_bps(p, t) > u64::from(deviation_bps));
        match (stale, stale_since) {
            (true, None) => stale_since = Some(t),
            (false, Some(since)) => {
                longest = longest.max(t - since);
                stale_since = None;
            }
            _ => {}
        }
    }
    longest.max(stale_since.map_or(0, |since| end - since))
}

pub fn check(
    scenario: &Scenario,
    market: &Market,
    world: &World,
    end: u64,
) -> (Report, Vec<Violation>) {
    let config = &scenario.config;
    let mut violations = Vec::new();
    let mut violate = |invariant: &'static str, id: Option<PriceId>, detail: String| {
        violations.push(Violation {
            invariant,
            detail,
            id,
        });
    };
    let skew_bound = scenario
        .skew_ms
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(0);
    let window = config.reference_max_age_ms + config.max_age_ms + 2 * skew_bound;
    let truth_bound_bps = config.max_deviation_bps as u64
        + market.honest_error_bps()
        + market.max_drift_bps(window)
        + 1;
    let liars_are_a_quorum = scenario.false_signers() >= config.quorum;
    let mut furthest = 0;
    let mut to_storage = Vec::new();
    // (stored at, observed at, price), both in simulated ms, for the staleness below.
    let mut stored_prices = Vec::new();
    // Every stored row as the read API's aggregate sees it: (stored at, sample).
    let mut samples = Vec::new();
    for (id, rows) in &world.database.rows {
        if rows.len() > 1 {
            violate(
                STORED_ONCE,
                Some(*id),
                format!("{id} stored {} times", rows.len()),
            );
        }
        for row in rows {
            let price = &row.price;
            if let Err(flaw) = price.audit(config) {
                violate(ROWS_AUDITED, Some(*id), format!("{id}: {flaw}"));
            }
            let signers = price.signatures().len();
            if signers < PROMISED_QUORUM {
                violate(PROMISED_SIGNERS, Some(*id), format!("{id} has {signers}"));
            }
            let body = price.message.body;
            let observed = body.observed_at_ms.saturating_sub(EPOCH_MS);
            stored_prices.push((row.inserted_at, observed, body.price));
            samples.push((
                row.inserted_at,
                protocol::Sample {
                    id: body.id,
                    origin: row.price.origin,
                    price: body.price,
                    observed_at_ms: observed,
                },
            ));
            let distance = market.distance_bps(body.price, observed);
            furthest = furthest.max(distance);
            if distance > truth_bound_bps && !liars_are_a_quorum {
                violate(
                    "no stored price is further from the truth than the deviation bound allows",
                    Some(*id),
                    format!("{id} is {distance} bps off, the bound is {truth_bound_bps} bps"),
                );
            }
            if let Some(timeline) = world.observer.prices.get(id) {
                to_storage.push(row.inserted_at.saturating_sub(timeline.published_at));
            }
        }
    }

    let longest_stale_ms = longest_stale_ms(&mut stored_prices, market, config.deviation_bps, end);
    let furthest_aggregate = furthest_aggregate_bps(&mut samples, market, config, end);
    let calm = scenario.calm_from_ms;
    let bound = config.liveness_bound_ms();
    let mut slowest_after_calm: Option<(PriceId, u64)> = None;
    let mut to_quorum = Vec::new();
    let mut reached_quorum = 0;
    let stored_at = |id: &PriceId| world.database.rows.get(id).map(|rows| rows[0].inserted_at);
    for (id, timeline) in &world.observer.prices {
        let Some(quorum_at) = timeline.quorum_at else {
            continue;
        };
        reached_quorum += 1;
        to_quorum.push(quorum_at - timeline.published_at);
        // Liveness is promised for honest origins' prices: an equivocating origin can hold its
        // own price back (nodes holding its other body do not pass this one on) until the other
        // body expires.
        if scenario.is_byzantine(timeline.origin) {
            continue;
        }
        let from = quorum_at.max(calm);
        match stored_at(id) {
            Some(at) => {
                let took = at.saturating_sub(from);
                if slowest_after_calm.is_none_or(|(_, t)| took > t) {
                    slowest_after_calm = Some((*id, took));
                }
            }
            None if end.saturating_sub(from) > bound => violate(
                "after the last fault, every price at quorum is stored within the bound",
                Some(*id),
                format!(
                    "{id} reached quorum at {:.1} s and was not stored by the end ({:.1} s)",
                    quorum_at as f64 / 1e3,
                    end as f64 / 1e3
                ),
            ),
            None => {}
        }
        if scenario.faults.is_empty() && scenario.attacks.is_empty() && scenario.network.loss == 0.0
        {
            let limit = config.write_delay_ms + FAULTLESS_MARGIN_MS;
            if let Some(at) = stored_at(id)
                && at - quorum_at > limit
            {
                violate(
                    "without faults, prices are stored within the write delay and a margin",
                    Some(*id),
                    format!(
                        "{id} took {} ms from quorum, the limit is {limit} ms",
                        at - quorum_at
                    ),
                );
            }
        }
    }
    // Co-signing is live: an honest price still fresh well after the last fault reaches quorum,
    // whatever it met before (nodes that could not observe it, a partition). Well after: a
    // watch's observation, a retransmission, and the honest clocks' spread (skew and steps, under
    // 30 s). Its origin must have stayed up: a crash loses what it alone held. And it must come
    // after the sources' lies and stalls, which set honest observations apart, and after every
    // observation made during them has aged out: a node refuses an out-of-band price for good.
    let fresh_after = calm + config.observe_interval_ms + config.retransmit_after_ms + 30_000;
    let sources_calm = scenario.sources.honest_from_ms() + config.reference_max_age_ms;
    let honest_can_make_a_quorum = scenario.params.nodes - scenario.attacks.len() >= config.quorum;
    for (id, timeline) in &world.observer.prices {
        let expires = timeline.published_at + config.max_age_ms;
        let origin_stayed_up =
            world.last_down_at[timeline.origin].is_none_or(|down| down < timeline.published_at);
        if timeline.quorum_at.is_none()
            && honest_can_make_a_quorum
            && !scenario.is_byzantine(timeline.origin)
            && origin_stayed_up
            && timeline.published_at >= sources_calm
            && expires >= fresh_after
            && expires + config.max_skew_ms <= end
        {
            violate(
                "an honest price still fresh well after the last fault reaches quorum",
                Some(*id),
                format!(
                    "{id} published at {:.1} s never reached quorum (calm from {:.1} s)",
                    timeline.published_at as f64 / 1e3,
                    calm as f64 / 1e3
                ),
            );
        }
    }
    if let Some((id, took)) = slowest_after_calm
        && took > bound
    {
        violate(
            "after the last fault, every price at quorum is stored within the bound",
            Some(id),
            format!("{id} took {took} ms, the bound is {bound} ms"),
        );
    }
    if let Some(&(at, node, from, why)) = world.fabric.honest_penalised.first() {
        violate(
            "honest nodes never penalise each other",
            None,
            format!(
                "n{node} penalised n{from} at {:.1} s for {why}, and {} more times",
                at as f64 / 1e3,
                world.fabric.honest_penalised.len() - 1
            ),
        );
    }
    for panic in &world.observer.panics {
        violate("no node panics", None, panic.clone());
    }

    let recovery = staged_moment(scenario, world).map(|from| {
        let first_store = world.database.rows.values().map(|rows| rows[0].inserted_at);
        let backlog: Vec<Option<u64>> = world
            .observer
            .prices
            .iter()
            .filter(|(_, t)| {
                !scenario.is_byzantine(t.origin) && t.quorum_at.is_some_and(|q| q <= from)
            })
            .map(|(id, _)| stored_at(id))
            .filter(|at| at.is_none_or(|at| at > from))
            .collect();
        Recovery {
            from_s: from as f64 / 1e3,
            first_store_ms: first_store
                .filter(|&at| at > from)
                .min()
                .map(|at| at - from),
            backlog: backlog.len(),
            backlog_stored_ms: backlog.iter().flatten().max().map(|at| at - from),
            backlog_lost: backlog.iter().filter(|at| at.is_none()).count(),
            slowest_storage_ms: world
                .observer
                .prices
                .iter()
                .filter_map(|(id, t)| Some((stored_at(id)?, t.quorum_at?)))
                .filter(|&(_, quorum_at)| quorum_at >= Staged::AT_MS)
                .map(|(stored_at, quorum_at)| stored_at.saturating_sub(quorum_at))
                .max()
                .unwrap_or(0),
        }
    });

    let fabric = &world.fabric;
    let stored = world.database.rows.len();
    let per_price = |total: u64| total as f64 / stored.max(1) as f64;
    let count = |pred: fn(&Fault) -> bool| scenario.faults.iter().filter(|(_, f)| pred(f)).count();
    let report = Report {
        seed: scenario.params.seed,
        nodes: scenario.params.nodes,
        faults: scenario.params.faults.to_string(),
        variant: scenario.params.variant.to_string(),
        simulated_s: end as f64 / 1e3,
        published: world.observer.published,
        reached_quorum,
        stored,
        insert_attempts: world.database.insert_attempts,
        duplicate_inserts_blocked: world.database.duplicates_blocked,
        expired_unstored: world.observer.expired_unstored,
        publication_to_quorum: Percentiles::of(to_quorum),
        publication_to_storage: Percentiles::of(to_storage),
        messages: fabric.traffic.messages,
        bytes: fabric.traffic.bytes,
        messages_per_stored_price: per_price(fabric.traffic.messages),
        bytes_per_stored_price: per_price(fabric.traffic.bytes),
        messages_per_stored_price_per_node: per_price(fabric.traffic.messages)
            / scenario.params.nodes as f64,
        most_messages_one_node_sent: fabric.sent_by.iter().map(|s| s.0).max().unwrap_or(0),
        invalid_dropped: by_name(&fabric.rejected),
        ignored: by_name(&fabric.ignored),
        lost: fabric.traffic.lost,
        duplicated: fabric.traffic.duplicated,
        cut_by_partition: fabric.traffic.cut_by_partition,
        links_pruned_for_misbehaviour: fabric.traffic.pruned_links,
        refused_duplicates: fabric.traffic.refused_duplicates,
        partitions: count(|f| matches!(f, Fault::Partition { .. })),
        crashes: count(|f| matches!(f, Fault::Crash { .. } | Fault::CrashNextWriter { .. })),
        database_outages: count(|f| matches!(f, Fault::DatabaseDown { .. })),
        database_hangs: count(|f| matches!(f, Fault::DatabaseHang { .. })),
        clock_steps: count(|f| matches!(f, Fault::ClockStep { .. })),
        nodes_cut_off_from_exchanges: (scenario.faults.iter())
            .map(|(_, f)| match f {
                Fault::ExchangesDown { nodes, .. } => nodes.len(),
                _ => 0,
            })
            .sum(),
        honest_penalties: fabric.honest_penalised.len(),
        byzantine_members: scenario.attacks.len(),
        attacks: scenario
            .attacks
            .iter()
            .map(|(node, attacks)| (format!("n{node}"), format!("{attacks:?}")))
            .collect(),
        liars: scenario.liars(),
        calm_from_s: calm as f64 / 1e3,
        longest_store_after_calm_ms: slowest_after_calm.map_or(0, |(_, t)| t),
        liveness_bound_ms: bound,
        furthest_from_truth_bps: furthest,
        longest_stale_ms,
        furthest_aggregate_from_truth_bps: furthest_aggregate,
        deviation_bps: config.deviation_bps,
        truth_bound_bps,
        trace_hash: format!("{:016x}", world.observer.trace_hash()),
        steps: world.observer.steps,
        recovery,
        ..Report::default()
    };
    (report, violations)
}

/// A count by static name, as the report spells it.
fn by_name(counts: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .map(|(&name, &n)| (name.to_owned(), n))
        .collect()
}

/// When a staged fault's recovery is measured from: the writer's death, or the heal.
fn staged_moment(scenario: &Scenario, world: &World) -> Option<u64> {
    match scenario.params.fixed.staged? {
        Staged::WriterCrash => world.writer_crashed_at,
        _ => Some(Staged::AT_MS + Staged::PARTITION_MS),
    }
}

/// Starts the peak measured by [`peak_memory_mb`] afresh (Linux; elsewhere it keeps the process's).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process (Linux), in MB; 0 where it cannot be read.
pub fn peak_memory_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Without faults: the write delay after quorum, plus the last signatures' arrival, a heartbeat
/// period for the writer's timer (or, after a term's end, for the next writer's first read) and
/// the database's round trip.
const FAULTLESS_MARGIN_MS: u64 = 10_000;

impl Report {
    /// The summary a person reads.
    pub fn summary(&self) -> String {
        let invalid: Vec<String> = self
            .invalid_dropped
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let recovery = self.recovery.as_ref().map_or(String::new(), |r| {
            let ms = |t: Option<u64>| t.map_or("never".to_owned(), |t| format!("{t} ms"));
            format!(
                "\nrecovery    from {from:.1} s: next row stored after {first}, the {backlog} \
                 prices at quorum then stored after {cleared} ({lost} never); slowest quorum to \
                 storage since the fault began {slowest} ms",
                from = r.from_s,
                first = ms(r.first_store_ms),
                backlog = r.backlog,
                cleared = ms(r.backlog_stored_ms),
                lost = r.backlog_lost,
                slowest = r.slowest_storage_ms,
            )
        });
        let recording = if self.recording_bytes == 0 {
            String::new()
        } else {
            let per_node_hour =
                self.recording_bytes as f64 / self.nodes as f64 / (self.simulated_s / 3600.0);
            format!(
                "\nrecording   {} bytes of events, {:.0} per node per hour; {} recordings began \
                 from a snapshot",
                self.recording_bytes, per_node_hour, self.recording_snapshots
            )
        };
        format!(
            "seed {seed} · {nodes} nodes · faults {faults} · {variant}\n\
             time        {sim:.0} s simulated in {wall:.2} s wall ({speed:.0}x), peak memory {mem} MB\n\
             prices      {published} published, {quorum} reached quorum, {stored} stored, \
             {blocked} duplicate inserts blocked ({attempts} attempts), {expired} expired unstored\n\
             latency     to quorum p50 {q50} ms p99 {q99} ms · to storage p50 {s50} ms p99 {s99} ms\n\
             traffic     {messages} messages, {bytes} bytes: {mpp:.0} messages and {bpp:.0} bytes \
             per stored price, {mppn:.2} per node; busiest node sent {busiest}\n\
             network     {lost} lost, {dup} duplicated, {cut} cut by partitions, {pruned} links \
             pruned, {refused} publications refused as duplicates, \
             {honest} penalties between honest nodes\n\
             faults      {partitions} partitions, {crashes} crashes, {outages} database outages, \
             {hangs} database hangs, {steps_} clock steps, {cut_off} nodes cut off from the \
             exchanges, {byz} Byzantine members ({liars} liars), calm from {calm:.0} s\n\
             byzantine   {attacks}\n\
             liveness    longest store after calm {longest} ms (bound {bound} ms)\n\
             truth       furthest stored price {far} bps off (bound {tb} bps), aggregate {agg} bps; \
             the newest \
             stored price off by more than {dev} bps for at most {stale} ms in a row\n\
             invalid     {invalid}\n\
             trace       {hash} over {steps} steps{recovery}{recording}",
            seed = self.seed,
            nodes = self.nodes,
            faults = self.faults,
            variant = self.variant,
            sim = self.simulated_s,
            wall = self.wall_s,
            speed = self.speedup,
            mem = self.peak_memory_mb,
            published = self.published,
            quorum = self.reached_quorum,
            stored = self.stored,
            blocked = self.duplicate_inserts_blocked,
            attempts = self.insert_attempts,
            expired = self.expired_unstored,
            q50 = self.publication_to_quorum.p50_ms,
            q99 = self.publication_to_quorum.p99_ms,
            s50 = self.publication_to_storage.p50_ms,
            s99 = self.publication_to_storage.p99_ms,
            messages = self.messages,
            bytes = self.bytes,
            mpp = self.messages_per_stored_price,
            bpp = self.bytes_per_stored_price,
            mppn = self.messages_per_stored_price_per_node,
            busiest = self.most_messages_one_node_sent,
            lost = self.lost,
            dup = self.duplicated,
            cut = self.cut_by_partition,
            pruned = self.links_pruned_for_misbehaviour,
            refused = self.refused_duplicates,
            partitions = self.partitions,
            crashes = self.crashes,
            outages = self.database_outages,
            hangs = self.database_hangs,
            steps_ = self.clock_steps,
            cut_off = self.nodes_cut_off_from_exchanges,
            honest = self.honest_penalties,
            byz = self.byzantine_members,
            attacks = if self.attacks.is_empty() {
                "none".to_owned()
            } else {
                let each: Vec<_> = self
                    .attacks
                    .iter()
                    .map(|(n, a)| format!("{n} {a}"))
                    .collect();
                each.join(", ")
            },
            liars = self.liars,
            calm = self.calm_from_s,
            longest = self.longest_store_after_calm_ms,
            bound = self.liveness_bound_ms,
            far = self.furthest_from_truth_bps,
            dev = self.deviation_bps,
            agg = self.furthest_aggregate_from_truth_bps,
            stale = self.longest_stale_ms,
            tb = self.truth_bound_bps,
            invalid = if invalid.is_empty() {
                "none".to_owned()
            } else {
                invalid.join(", ")
            },
            hash = self.trace_hash,
            steps = self.steps,
        )
    }
}
