//! What one run simulates, drawn entirely from its seed (in the manner of TigerBeetle's VOPR: the
//! seed picks the fault parameters too, not only the moments): the deployment, the network's
//! character, clocks, price sources, Byzantine members and the schedule of faults.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use protocol::{Address, Config, Feed, Keypair, Signers};

use crate::check;
use crate::dice::Dice;

/// The knobs a person sets; everything else follows from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub seed: u64,
    pub nodes: usize,
    /// Simulated time, milliseconds.
    pub duration_ms: u64,
    pub faults: Profile,
    pub variant: Variant,
    /// What a measurement fixes instead of drawing it; `Fixed::default()` fixes nothing.
    pub fixed: Fixed,
    /// Every node records what it is fed with the production flight recorder
    /// (`protocol::journal`), and every recording must replay exactly at the end.
    pub record: bool,
    /// Every node is also woken at an odd moment of every tick, whether or not anything is due
    /// for it: a run must not depend on how often its nodes are woken, so the trace stays the same.
    pub idle_wakes: bool,
}

/// Which faults a run may draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    /// A healthy network, database and sources: the baseline for latency.
    None,
    /// Loss, duplication, delay spikes and partitions.
    Network,
    /// Node crashes and restarts, the writer dying between write and acknowledgement.
    Crashes,
    /// Database outages, hangs and lost acknowledgements.
    Database,
    /// Byzantine members and misbehaving sources.
    Byzantine,
    /// Everything above, and clock skew and steps.
    All,
}

impl Profile {
    /// Every profile with its command-line name: the one place that pairs them.
    pub const ALL: [(Profile, &'static str); 6] = [
        (Profile::None, "none"),
        (Profile::Network, "network"),
        (Profile::Crashes, "crashes"),
        (Profile::Database, "database"),
        (Profile::Byzantine, "byzantine"),
        (Profile::All, "all"),
    ];

    pub fn parse(name: &str) -> Option<Profile> {
        by_name(&Profile::ALL, name)
    }

    fn has(self, kind: Profile) -> bool {
        self == kind || self == Profile::All
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(name_of(&Profile::ALL, self))
    }
}

/// Deliberately broken builds, to show the checker catches what it claims to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    Correct,
    /// Nodes configured to write with one signature.
    QuorumOfOne,
    /// A database that lets a second row in under an existing id.
    NoPrimaryKey,
    /// Nodes that count every signature as valid without checking it.
    SignsWithoutVerifying,
}

impl Variant {
    /// Every variant with its command-line name: the one place that pairs them.
    pub const ALL: [(Variant, &'static str); 4] = [
        (Variant::Correct, "correct"),
        (Variant::QuorumOfOne, "quorum-of-one"),
        (Variant::NoPrimaryKey, "no-primary-key"),
        (Variant::SignsWithoutVerifying, "signs-without-verifying"),
    ];

    pub fn parse(name: &str) -> Option<Variant> {
        by_name(&Variant::ALL, name)
    }

    /// The invariant this broken build must be caught breaking (none for the correct build): a
    /// run caught only by some other invariant, a liveness timeout say, does not count.
    pub fn must_break(self) -> Option<&'static str> {
        match self {
            Variant::Correct => None,
            Variant::QuorumOfOne => Some(check::PROMISED_SIGNERS),
            Variant::NoPrimaryKey => Some(check::STORED_ONCE),
            Variant::SignsWithoutVerifying => Some(check::ROWS_AUDITED),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(name_of(&Variant::ALL, self))
    }
}

/// The value a table pairs with `name`.
fn by_name<T: Copy>(table: &[(T, &str)], name: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

/// The name a table pairs with `value` (every value is listed).
fn name_of<'a, T: PartialEq>(table: &[(T, &'a str)], value: &T) -> &'a str {
    table
        .iter()
        .find(|(v, _)| v == value)
        .map(|(_, n)| *n)
        .expect("every value is listed")
}

/// The names in a table, for messages.
pub fn names<T>(table: &[(T, &str)]) -> String {
    table.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

/// Settings the results tables (`crate::results`) fix instead of drawing them from the seed. They
/// are applied after every draw, so that the rest of the scenario is the seed's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fixed {
    /// Message loss, per cent, on an otherwise healthy network.
    pub loss_percent: Option<u32>,
    /// Signatures a price needs before it is written.
    pub quorum: Option<usize>,
    /// Members that observe the price `LIE_BPS` off the truth together, and do nothing else amiss.
    pub liars: Option<usize>,
    /// One fault at a fixed moment, and no other.
    pub staged: Option<Staged>,
}

/// The fixed liars' shared offset from the truth.
pub const LIE_BPS: i64 = 300;

/// A single fault at a fixed moment, for the recovery table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staged {
    /// No fault: recovery measured from `AT_MS + PARTITION_MS` anyway, as the baseline.
    Calm,
    /// The writer dies at its first write from `AT_MS`, its row applied and the answer lost, and
    /// stays down.
    WriterCrash,
    /// The writer is cut off from every peer's gossip from `AT_MS` for `PARTITION_MS`; its
    /// database stays reachable.
    WriterIsolated,
    /// A random half of the network is cut off from the other half, as long.
    Split,
}

impl Staged {
    pub const ALL: [(Staged, &'static str); 4] = [
        (Staged::Calm, "calm"),
        (Staged::WriterCrash, "writer-crash"),
        (Staged::WriterIsolated, "writer-isolated"),
        (Staged::Split, "split"),
    ];
    /// 20 s into a writer's term (terms are 60 s): at a term's first moment, the writer the
    /// fault aims at is the one just stepping down.
    pub const AT_MS: u64 = 5 * 60_000 + 20_000;
    pub const PARTITION_MS: u64 = 2 * 60_000;

    pub fn parse(name: &str) -> Option<Staged> {
        by_name(&Staged::ALL, name)
    }

    /// The fault's schedule; `side` is half the network, drawn from the seed.
    fn schedule(self, duration_ms: u64, side: BTreeSet<usize>) -> Vec<(u64, Fault)> {
        let (at, heal) = (Staged::AT_MS, Staged::AT_MS + Staged::PARTITION_MS);
        let partition = |isolate_writer| Fault::Partition {
            side,
            one_way: false,
            isolate_writer,
        };
        match self {
            Staged::Calm => Vec::new(),
            Staged::WriterCrash => vec![(
                at,
                Fault::CrashNextWriter {
                    down_ms: duration_ms,
                },
            )],
            Staged::WriterIsolated => vec![(at, partition(true)), (heal, Fault::Heal)],
            Staged::Split => vec![(at, partition(false)), (heal, Fault::Heal)],
        }
    }
}

impl fmt::Display for Staged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(name_of(&Staged::ALL, self))
    }
}

impl Params {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut command = format!(
            "cargo test -p simulation -- --seed {} --nodes {} --duration {}s --faults {}",
            self.seed,
            self.nodes,
            self.duration_ms / 1_000,
            self.faults
        );
        if self.variant != Variant::Correct {
            command += &format!(" --variant {}", self.variant);
        }
        if self.record {
            command += " --record";
        }
        if self.idle_wakes {
            command += " --idle-wakes";
        }
        let fixed = self.fixed;
        let flags = [
            ("--loss", fixed.loss_percent.map(|p| p.to_string())),
            ("--quorum", fixed.quorum.map(|q| q.to_string())),
            ("--liars", fixed.liars.map(|k| k.to_string())),
            ("--stage", fixed.staged.map(|s| s.to_string())),
        ];
        for (flag, value) in flags {
            if let Some(value) = value {
                command += &format!(" {flag} {value}");
            }
        }
        command
    }
}

/// What a Byzantine member does besides running the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    /// Observes a price this many basis points off the truth (colluding liars share one offset).
    Lie(i64),
    /// Publishes a second, different body under each id it mints.
    Equivocate,
    /// Corrupts its own signature on what it sends.
    InvalidSignature,
    /// Adds a made-up signature in an honest member's name.
    ForgeSigner,
    /// Adds a valid signature by a key outside the allowlist.
    UnknownSigner,
    /// Lists one signer twice.
    DuplicateSigner,
    /// Sends copies carrying its own valid signature beside a corrupted copy of another signer's:
    /// nodes that hold the price see one new valid signature, and must still not pass it on.
    CorruptRelay,
    /// Sends each message again under another nonce (unsigned): another gossip id.
    Reissue,
    /// Sends old prices again.
    Replay,
    /// Floods random bytes.
    Junk,
    /// Heartbeats like a member but never writes when elected.
    SilentWriter,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub latency_ms: (u64, u64),
    pub loss: f64,
    pub duplication: f64,
    /// Mesh degree, as gossipsub's D.
    pub degree: usize,
    /// `protocol::gossip::duplicate_cache_ms` of the run's config.
    pub seen_for_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub latency_ms: (u64, u64),
    /// The database host's clock offset from true time.
    pub skew_ms: i64,
    /// A write applied but its answer lost on the way back.
    pub lost_ack: f64,
    pub primary_key: bool,
}

#[derive(Debug, Clone)]
pub struct Sources {
    pub count: usize,
    pub noise_bps: u64,
    pub failure: f64,
    /// (source, from, until, basis points): a source quoting off the truth for a while.
    pub lies: Vec<(usize, u64, u64, i64)>,
    /// (source, from, until): a source not answering for a while.
    pub stalls: Vec<(usize, u64, u64)>,
}

impl Sources {
    /// When the last source that lied or stalled is back to quoting the truth.
    pub fn honest_from_ms(&self) -> u64 {
        let lies = self.lies.iter().map(|&(_, _, until, _)| until);
        let stalls = self.stalls.iter().map(|&(_, _, until)| until);
        lies.chain(stalls).max().unwrap_or(0)
    }
}

/// One scheduled fault. Times are simulated milliseconds from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Links between the two sides drop; `one_way` drops only messages from side 1 to side 0.
    Partition {
        side: BTreeSet<usize>,
        one_way: bool,
        isolate_writer: bool,
    },
    Heal,
    Crash {
        node: usize,
        down_ms: u64,
    },
    /// The next node to write dies once the database applied it, before the answer arrives.
    CrashNextWriter {
        down_ms: u64,
    },
    DatabaseDown {
        until: u64,
    },
    /// Database calls neither take effect nor answer until then; drivers time them out.
    DatabaseHang {
        until: u64,
    },
    /// A node's wall clock steps by this much (forward or back) while it runs.
    ClockStep {
        node: usize,
        by_ms: i64,
    },
    DelaySpike {
        until: u64,
        extra_ms: u64,
    },
    /// The exchanges answer none of these nodes until then (their link to them is down).
    ExchangesDown {
        nodes: BTreeSet<usize>,
        until: u64,
    },
}

pub struct Scenario {
    pub params: Params,
    /// One copy for every node: each reads it on every event.
    pub config: Arc<Config>,
    pub keys: Vec<Keypair>,
    /// A key outside the allowlist.
    pub outsider: Keypair,
    pub network: Network,
    pub database: Database,
    pub sources: Sources,
    pub skew_ms: Vec<i64>,
    pub attacks: BTreeMap<usize, Vec<Attack>>,
    pub faults: Vec<(u64, Fault)>,
    /// When the last network, crash or database fault is over (Byzantine members never stop).
    pub calm_from_ms: u64,
}

/// The exchanges unreachable from some nodes for longer than an observation stays fresh, so that
/// prices reach them while they cannot observe. Half the time from all but one or two nodes: then
/// no price reaches quorum until they observe again, and each must wait for them. Drawn apart, so
/// that it moves no other draw.
fn exchanges_down(seed: u64, n: usize, fault_end: u64) -> (u64, Fault) {
    let mut dice = Dice::new(seed, "exchanges down", 0);
    let at = dice.range(0, fault_end);
    let until = (at + dice.range(60_000, 170_000)).min(fault_end);
    let mut nodes: BTreeSet<usize> = (0..n).collect();
    if dice.chance(0.5) {
        for _ in 0..dice.range(1, PROMISED_QUORUM as u64 - 1) {
            nodes.remove(&dice.below(n));
        }
    } else {
        let share = dice.unit();
        nodes.retain(|_| dice.chance(share));
    }
    (at, Fault::ExchangesDown { nodes, until })
}

/// The product's promise, whatever a node's configuration says.
pub const PROMISED_QUORUM: usize = 3;
/// Unix time of the simulation's start, so ids and logs read like real ones.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

impl Scenario {
    pub fn new(params: Params) -> Scenario {
        let mut dice = Dice::new(params.seed, "scenario", 0);
        let n = params.nodes;
        let keys = node_keys(n);
        let allowlist: BTreeSet<Address> = keys.iter().map(Keypair::address).collect();
        let mut config = Config::new("simnet", Feed::eth_usd(), Signers::allowlist(allowlist));
        config.min_peers = 3.min(n - 1);
        if params.variant == Variant::QuorumOfOne {
            config.quorum = 1;
        }
        let faults = params.faults;
        let network = if faults.has(Profile::Network) {
            let lo = dice.range(1, 30);
            Network {
                latency_ms: (lo, lo + dice.range(5, 300)),
                loss: dice.unit() * 0.30,
                duplication: dice.unit() * 0.50,
                degree: 6,
                seen_for_ms: protocol::gossip::duplicate_cache_ms(&config),
            }
        } else {
            Network {
                latency_ms: (5, 60),
                loss: 0.0,
                duplication: 0.0,
                degree: 6,
                seen_for_ms: protocol::gossip::duplicate_cache_ms(&config),
            }
        };
        let database = Database {
            latency_ms: (1, dice.range(2, 40)),
            skew_ms: if faults.has(Profile::All) {
                dice.range(0, 4_000) as i64 - 2_000
            } else {
                0
            },
            lost_ack: if faults.has(Profile::Database) || params.variant == Variant::NoPrimaryKey {
                0.02 + dice.unit() * 0.2
            } else {
                0.0
            },
            primary_key: params.variant != Variant::NoPrimaryKey,
        };
        let duration = params.duration_ms;
        // Faults happen in the first 60 % of the run; the rest shows recovery.
        let fault_end = duration * 6 / 10;
        let mut sources = Sources {
            count: 3,
            noise_bps: 5,
            failure: 0.0,
            lies: Vec::new(),
            stalls: Vec::new(),
        };
        if faults.has(Profile::Byzantine) {
            sources.failure = dice.unit() * 0.15;
            // At most one source misbehaves at a time: with 3 sources the median stays honest.
            let source = dice.below(3);
            let from = dice.range(0, fault_end);
            let until = from + dice.range(30_000, 300_000);
            let bps = dice.range(50, 200) as i64 * if dice.chance(0.5) { 1 } else { -1 };
            sources.lies.push((source, from, until, bps));
            let from = dice.range(0, fault_end);
            sources
                .stalls
                .push(((source + 1) % 3, from, from + dice.range(30_000, 300_000)));
        }
        let skew_bound = if faults.has(Profile::All) {
            dice.range(0, 5_000)
        } else {
            0
        };
        let skew_ms = (0..n)
            .map(|_| dice.range(0, 2 * skew_bound) as i64 - skew_bound as i64)
            .collect();
        let attacks = if faults.has(Profile::Byzantine) || params.variant != Variant::Correct {
            byzantine(&mut dice, params.seed, n, config.quorum, params.variant)
        } else {
            BTreeMap::new()
        };
        let mut schedule = Vec::new();
        if faults.has(Profile::Network) {
            for _ in 0..dice.range(1, 4) {
                let at = dice.range(0, fault_end);
                let length = dice.range(10_000, 240_000);
                let isolate_writer = dice.chance(0.25);
                let minority = (n as u64 * dice.range(10, 49) / 100).max(1) as usize;
                let side = (0..minority).map(|_| dice.below(n)).collect();
                let one_way = !isolate_writer && dice.chance(0.25);
                let partition = Fault::Partition {
                    side,
                    one_way,
                    isolate_writer,
                };
                schedule.push((at, partition));
                schedule.push(((at + length).min(fault_end), Fault::Heal));
            }
            for _ in 0..dice.range(0, 3) {
                let at = dice.range(0, fault_end);
                let until = (at + dice.range(1_000, 60_000)).min(fault_end);
                let extra_ms = dice.range(200, 3_000);
                schedule.push((at, Fault::DelaySpike { until, extra_ms }));
            }
            schedule.push(exchanges_down(params.seed, n, fault_end));
        }
        if faults.has(Profile::Crashes) {
            for _ in 0..dice.range(1, (n as u64 / 10).clamp(2, 30)) {
                let at = dice.range(0, fault_end);
                let down_ms = dice
                    .range(1_000, 180_000)
                    .min(fault_end.saturating_sub(at) + 1);
                schedule.push((
                    at,
                    Fault::Crash {
                        node: dice.below(n),
                        down_ms,
                    },
                ));
            }
            for _ in 0..dice.range(1, 3) {
                let at = dice.range(0, fault_end);
                let down_ms = dice.range(1_000, 60_000);
                schedule.push((at, Fault::CrashNextWriter { down_ms }));
            }
        }
        if faults.has(Profile::Database) {
            for _ in 0..dice.range(1, 3) {
                let at = dice.range(0, fault_end);
                let until = (at + dice.range(5_000, 120_000)).min(fault_end);
                schedule.push((at, Fault::DatabaseDown { until }));
            }
            for _ in 0..dice.range(0, 2) {
                let at = dice.range(0, fault_end);
                let until = (at + dice.range(5_000, 90_000)).min(fault_end);
                schedule.push((at, Fault::DatabaseHang { until }));
            }
        }
        if faults.has(Profile::All) {
            // Each step leaves the node's clock within ±20 s of the truth, its skew aside (±5 s),
            // so that no two honest clocks are max_skew (60 s) apart.
            let mut stepped = vec![0i64; n];
            let mut steps: Vec<(u64, usize)> = (0..dice.range(0, 3))
                .map(|_| (dice.range(0, fault_end), dice.below(n)))
                .collect();
            steps.sort_unstable();
            for (at, node) in steps {
                let to = dice.range(2_000, 20_000) as i64 * if dice.chance(0.5) { 1 } else { -1 };
                let by_ms = to - std::mem::replace(&mut stepped[node], to);
                schedule.push((at, Fault::ClockStep { node, by_ms }));
            }
        }
        schedule.sort_by_key(|(at, _)| *at);
        let calm_from_ms = schedule
            .iter()
            .map(|(at, fault)| match fault {
                Fault::Crash { down_ms, .. } | Fault::CrashNextWriter { down_ms } => at + down_ms,
                Fault::DatabaseDown { until }
                | Fault::DatabaseHang { until }
                | Fault::DelaySpike { until, .. }
                | Fault::ExchangesDown { until, .. } => *until,
                // A clock stepped back is caught up with by running at nine tenths of the rate.
                Fault::ClockStep { by_ms, .. } => at + (*by_ms).min(0).unsigned_abs() * 10,
                Fault::Partition { .. } | Fault::Heal => *at,
            })
            .max()
            .unwrap_or(0);
        let mut scenario = Scenario {
            params,
            config: Arc::new(config),
            keys,
            outsider: key(u32::MAX - 1),
            network,
            database,
            sources,
            skew_ms,
            attacks,
            faults: schedule,
            calm_from_ms,
        };
        scenario.fix(&mut dice);
        scenario
    }

    /// Applies what `params.fixed` sets, over what the seed drew.
    fn fix(&mut self, dice: &mut Dice) {
        let fixed = self.params.fixed;
        let n = self.params.nodes;
        if let Some(percent) = fixed.loss_percent {
            self.network.loss = f64::from(percent) / 100.0;
        }
        if let Some(quorum) = fixed.quorum {
            Arc::make_mut(&mut self.config).quorum = quorum;
        }
        if let Some(liars) = fixed.liars {
            self.attacks = (0..liars.min(n))
                .map(|k| (k * n / liars, vec![Attack::Lie(LIE_BPS)]))
                .collect();
        }
        if let Some(staged) = fixed.staged {
            let side = (0..n).filter(|_| dice.chance(0.5)).collect();
            self.faults = staged.schedule(self.params.duration_ms, side);
            self.calm_from_ms = match staged {
                Staged::WriterCrash => Staged::AT_MS,
                _ => Staged::AT_MS + Staged::PARTITION_MS,
            };
        }
    }

    /// Members lying about the price, and the offset they share.
    pub fn liars(&self) -> usize {
        self.attacks
            .values()
            .filter(|a| a.iter().any(|x| matches!(x, Attack::Lie(_))))
            .count()
    }

    /// Members that sign a false price: liars, and equivocating origins, which sign their own
    /// false body.
    pub fn false_signers(&self) -> usize {
        self.attacks
            .values()
            .filter(|a| {
                a.iter()
                    .any(|x| matches!(x, Attack::Lie(_) | Attack::Equivocate))
            })
            .count()
    }

    pub fn is_byzantine(&self, node: usize) -> bool {
        self.attacks.contains_key(&node)
    }
}

fn byzantine(
    dice: &mut Dice,
    seed: u64,
    n: usize,
    quorum: usize,
    variant: Variant,
) -> BTreeMap<usize, Vec<Attack>> {
    use Attack::*;
    let mut attacks = BTreeMap::new();
    let count = match variant {
        Variant::Correct => dice.range(1, (n as u64 / 10).max(1)) as usize,
        _ => 2,
    };
    // Usually fewer liars than a quorum; one run in four, a colluding quorum of them.
    let liars = if variant == Variant::Correct && dice.chance(0.25) {
        quorum.min(n / 3)
    } else {
        dice.range(0, (quorum as u64).saturating_sub(1)) as usize
    };
    let offset = dice.range(150, 500) as i64 * if dice.chance(0.5) { 1 } else { -1 };
    let all = [
        Equivocate,
        InvalidSignature,
        ForgeSigner,
        UnknownSigner,
        DuplicateSigner,
        CorruptRelay,
        Replay,
        Junk,
        SilentWriter,
    ];
    let members: BTreeSet<usize> = (0..count.max(liars).min(n / 3).max(1))
        .map(|_| dice.below(n))
        .collect();
    for (k, &node) in members.iter().enumerate() {
        let mut chosen: Vec<Attack> = all.iter().copied().filter(|_| dice.chance(0.4)).collect();
        if k < liars {
            chosen.push(Lie(offset));
        }
        if variant == Variant::SignsWithoutVerifying {
            chosen = vec![ForgeSigner];
        }
        if variant != Variant::Correct && variant != Variant::SignsWithoutVerifying {
            chosen.clear();
        }
        // Drawn from a stream of its own, so that adding it moved no other draw.
        if variant == Variant::Correct
            && !chosen.is_empty()
            && Dice::new(seed, "resend attack", node as u64).chance(0.4)
        {
            chosen.push(Reissue);
        }
        attacks.insert(node, chosen);
    }
    attacks.retain(|_, a| !a.is_empty());
    attacks
}

fn key(index: u32) -> Keypair {
    let mut secret = [0u8; 32];
    secret[28..].copy_from_slice(&(index + 1).to_be_bytes());
    secret[0] = 0x5a;
    Keypair::from_secret(&secret).expect("a valid secret")
}

/// Node i's key, the same in every run.
pub fn node_keys(n: usize) -> Vec<Keypair> {
    (0..n as u32).map(key).collect()
}
