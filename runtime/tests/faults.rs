//! Faults on real node processes, in the manner of Jepsen. Five `runtime node` processes (the
//! built binary), each in its own network namespace with its own address on a bridge, share one
//! PostgreSQL reached through the hub, where the test also serves exchange-shaped prices. A
//! schedule drawn from a printed seed partitions them, thins links, kills and stops nodes, cuts
//! the database and steps one node's wall clock (libfaketime), then heals. At the end an audit that
//! shares no code with the protocol crate checks every row, and every price that reached a quorum
//! must be stored within the bound README promises.
//!
//! `FAULTS_SEED=N cargo test -p runtime --test faults -- --nocapture` replays a schedule (the
//! processes and the network are real, so the timing of what happens within it is not replayed).

#[path = "faults/audit.rs"]
mod audit;
mod common;
#[path = "faults/lab.rs"]
mod lab;
#[path = "faults/nodes.rs"]
mod nodes;
#[path = "faults/schedule.rs"]
mod schedule;
#[path = "faults/testbed.rs"]
mod testbed;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lab::Lab;
use nix::sys::signal::Signal;
use nodes::{History, Line, Node, now_ms};
use schedule::{Fault, Step};
use testbed::{NETWORK, QUORUM, Testbed};

const NODES: usize = 5;
/// The node whose wall clock steps, under libfaketime.
const STEPPED: usize = NODES - 1;

/// The production rules with short periods, so a run takes about three minutes; README's liveness
/// bound computed from them is 14 s.
const TIMING: &[&str] = &[
    "--price-interval=5s",
    "--write-delay=1s",
    "--heartbeat-interval=500ms",
    "--heartbeat-stale=2s",
    "--writer-term=5s",
    "--backup-step=2s",
    "--cosign-step=1s",
    "--retransmit-after=3s",
    "--database-timeout=2s",
    "--source-timeout=2s",
    "--min-peers=2",
];

#[test]
fn faults_on_real_node_processes() {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() % 1_000_000);
    println!("seed {seed}: FAULTS_SEED={seed} cargo test -p runtime --test faults -- --nocapture");
    let schedule = schedule::draw(seed, NODES);
    let mut bed = Testbed::new(NODES, TIMING, Some(STEPPED));
    let bound_ms = bed.bound_ms;
    let started_at = now_ms();
    bed.start_all();
    let first_stored_at = bed.first_stored(started_at + 60_000);
    let mut run = Run {
        lab: &bed.lab,
        nodes: &mut bed.nodes,
        history: &bed.history,
        faults: Vec::new(),
        clock_offset_s: 0,
        clock_file: bed.clock_file.clone(),
        writer_killed_at: None,
    };
    for step in &schedule {
        run.apply(step);
    }
    let (faults, writer_killed_at) = (run.faults.clone(), run.writer_killed_at);
    let calm_at = faults.last().map_or(started_at, |f| f.0);
    let end_at = calm_at.max(now_ms()) + bound_ms + 10_000;
    std::thread::sleep(Duration::from_millis(end_at.saturating_sub(now_ms())));
    let rows = bed.rows();
    let alive: Vec<bool> = bed.nodes.iter_mut().map(Node::is_running).collect();
    for node in bed.nodes.iter_mut() {
        node.stop(Signal::SIGTERM);
    }
    let lines = bed.lines();
    let signers = &bed.signers;

    let network_id = audit::network_id(NETWORK, QUORUM as u32, signers);
    let mut problems = audit::problems(&rows, &network_id, signers, QUORUM);
    problems.extend(
        alive
            .iter()
            .enumerate()
            .filter(|(_, alive)| !**alive)
            .map(|(i, _)| format!("node {i} is not running at the end")),
    );
    let stories = Stories::from(&lines);
    let stored: BTreeMap<&str, u64> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.inserted_at_ms))
        .collect();
    let mut checked = 0;
    for (id, quorum_at) in &stories.quorum_at {
        let deadline = (*quorum_at).max(calm_at) + bound_ms;
        let origin_alive = stories.origin.get(id).is_some_and(|&o| alive[o]);
        if deadline > end_at || !origin_alive {
            continue;
        }
        checked += 1;
        match stored.get(id.as_str()) {
            Some(&at) if at <= deadline => {}
            Some(&at) => problems.push(format!(
                "{id}: at quorum {} ms after the start, stored {} ms after its deadline",
                quorum_at - started_at,
                at - deadline
            )),
            None => problems.push(format!(
                "{id}: at quorum {} ms after the start, never stored",
                quorum_at - started_at
            )),
        }
    }
    if rows.is_empty() || checked == 0 {
        problems.push(format!(
            "{} rows, {checked} prices held to the bound",
            rows.len()
        ));
    }

    let figures = Figures {
        rows: rows.len(),
        checked,
        bound_ms,
        first_store_ms: first_stored_at.map(|t| t - started_at),
        to_storage_ms: rows
            .iter()
            .filter_map(|r| {
                Some(
                    r.inserted_at_ms
                        .saturating_sub(*stories.published_at.get(&r.id)?),
                )
            })
            .collect(),
        after_writer_killed_ms: writer_killed_at.and_then(|killed| {
            rows.iter()
                .map(|r| r.inserted_at_ms)
                .filter(|&t| t > killed)
                .min()
                .map(|t| t - killed)
        }),
        usage: bed.nodes.iter().map(Node::total).collect(),
        seconds: (end_at - started_at) / 1_000,
    };
    println!("{figures}");
    println!(
        "what happened (ms from the start): rows stored, and warnings logged, until the next line"
    );
    for (k, (at, what)) in faults.iter().enumerate() {
        let until = faults.get(k + 1).map_or(end_at, |f| f.0);
        let stored = rows
            .iter()
            .filter(|r| (*at..until).contains(&r.inserted_at_ms))
            .count();
        let mut warnings = BTreeMap::<&str, BTreeSet<usize>>::new();
        for line in lines.iter().filter(|l| (*at..until).contains(&l.at_ms)) {
            if line.level == "WARN" || line.level == "ERROR" {
                warnings.entry(&line.message).or_default().insert(line.node);
            }
        }
        let warnings: Vec<String> = warnings
            .iter()
            .map(|(message, nodes)| format!("{message} {nodes:?}"))
            .collect();
        println!(
            "  {:>7} {what}: {stored} rows; {}",
            at - started_at,
            warnings.join("; ")
        );
    }
    if !problems.is_empty() {
        for problem in problems.iter().take(20) {
            let id = problem.split([':', ' ']).next().unwrap_or("");
            println!("\n{problem}\n  its story (ms from the start, node, event):");
            for line in lines.iter().filter(|l| l.field("id") == Some(id)) {
                println!(
                    "  {:>7} n{} {}",
                    line.at_ms - started_at,
                    line.node,
                    line.message
                );
            }
        }
        println!("\nthe last lines of each node:");
        for i in 0..NODES {
            let tail: Vec<&Line> = lines.iter().filter(|l| l.node == i).collect();
            for line in &tail[tail.len().saturating_sub(15)..] {
                println!(
                    "  n{i} {:>7} {} {}",
                    line.at_ms - started_at,
                    line.message,
                    line.fields
                );
            }
        }
        panic!(
            "seed {seed}: {} problems, the first: {}",
            problems.len(),
            problems[0]
        );
    }
    bed.remove_files();
}

/// How many node processes this machine holds: `CAPACITY_NODES` (comma-separated sizes) nodes at
/// a 10 s price interval and production's other periods, no faults, each size for
/// `CAPACITY_SECONDS`. Prints, per size, the
/// delays from publication to quorum and to storage of the prices published after a warm-up, with
/// memory and CPU per node.
#[test]
#[ignore = "a measurement of this machine, minutes per size: cargo test -p runtime --test faults \
            capacity -- --ignored --nocapture"]
fn capacity() {
    let variable = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    let sizes: Vec<usize> = variable("CAPACITY_NODES", "5,10,20,40")
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("CAPACITY_NODES: sizes like 5,10,20")
        })
        .collect();
    let seconds: u64 = variable("CAPACITY_SECONDS", "90").parse().unwrap();
    // Production's periods but a price every 10 s, written 1 s after its last signature.
    let timing = [
        "--price-interval=10s",
        "--write-delay=1s",
        "--min-peers=2",
        "--source-timeout=2s",
    ];
    println!(
        "nodes  prices  stored  to quorum p50/p99 ms  to storage p50/p99 ms  RSS MiB/node  CPU %/node"
    );
    for count in sizes {
        let mut bed = Testbed::new(count, &timing, None);
        let started_at = now_ms();
        bed.start_all();
        std::thread::sleep(Duration::from_secs(seconds));
        let rows = bed.rows();
        for node in bed.nodes.iter_mut() {
            node.stop(Signal::SIGTERM);
        }
        let elapsed_s = (now_ms() - started_at) as f64 / 1_000.0;
        let stories = Stories::from(&bed.lines());
        let stored: BTreeMap<&str, u64> = rows
            .iter()
            .map(|r| (r.id.as_str(), r.inserted_at_ms))
            .collect();
        // Prices published after a 20 s warm-up, and 30 s before the end or earlier.
        let window = started_at + 20_000..started_at + (seconds * 1_000).saturating_sub(30_000);
        let measured: Vec<(&String, &u64)> = stories
            .published_at
            .iter()
            .filter(|(_, at)| window.contains(at))
            .collect();
        let to_quorum: Vec<u64> = measured
            .iter()
            .filter_map(|(id, at)| Some(stories.quorum_at.get(*id)?.saturating_sub(**at)))
            .collect();
        let to_storage: Vec<u64> = measured
            .iter()
            .filter_map(|(id, at)| Some(stored.get(id.as_str())?.saturating_sub(**at)))
            .collect();
        let usage: Vec<nodes::Usage> = bed.nodes.iter().map(Node::total).collect();
        let rss_mib =
            usage.iter().map(|u| u.peak_rss_kib).sum::<u64>() as f64 / 1024.0 / count as f64;
        let cpu = usage.iter().map(|u| u.cpu_s).sum::<f64>() / elapsed_s / count as f64 * 100.0;
        println!(
            "{count:>5}  {:>6}  {:>6}  {:>9} / {:<9}  {:>10} / {:<9}  {rss_mib:>12.1}  {cpu:>10.1}",
            measured.len(),
            to_storage.len(),
            quantile(&to_quorum, 0.5),
            quantile(&to_quorum, 0.99),
            quantile(&to_storage, 0.5),
            quantile(&to_storage, 0.99),
        );
        bed.remove_files();
    }
}

/// The `q` quantile of `values` (0 for none).
fn quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0)
}

/// The run in progress: what is cut, stopped or stepped, and what happened when.
struct Run<'a> {
    lab: &'a Lab,
    nodes: &'a mut [Node],
    history: &'a History,
    /// (when, what), healings included.
    faults: Vec<(u64, String)>,
    clock_offset_s: i64,
    clock_file: std::path::PathBuf,
    writer_killed_at: Option<u64>,
}

impl Run<'_> {
    fn apply(&mut self, step: &Step) {
        let writer = self.writer();
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let others = |w: usize| all.iter().copied().filter(|&i| i != w).collect::<Vec<_>>();
        let mut stopped = None;
        let what = match &step.fault {
            Fault::Partition { minority, majority } => {
                self.lab.partition(minority, majority);
                format!("partition {minority:?} | {majority:?}")
            }
            Fault::IsolateWriter => {
                self.lab.partition(&[writer], &others(writer));
                format!("writer n{writer} isolated from its peers")
            }
            Fault::OneWay { from, to } => {
                for &a in from {
                    for &b in to {
                        self.lab.drop_from(a, b, 100);
                    }
                }
                format!("one way: {from:?} not heard by {to:?}")
            }
            Fault::Loss { links, percent } => {
                for &(a, b) in links {
                    self.lab.drop_from(a, b, *percent);
                    self.lab.drop_from(b, a, *percent);
                }
                format!("{percent} % loss on {links:?}")
            }
            Fault::KillWriter => {
                self.stop(writer, Signal::SIGKILL);
                self.writer_killed_at = Some(now_ms());
                stopped = Some(writer);
                format!("kill -9 of the writer n{writer}")
            }
            Fault::Kill { node } => {
                self.stop(*node, Signal::SIGKILL);
                stopped = Some(*node);
                format!("kill -9 of n{node}")
            }
            Fault::Terminate { node } => {
                self.stop(*node, Signal::SIGTERM);
                stopped = Some(*node);
                format!("SIGTERM to n{node}")
            }
            Fault::DatabaseCut => {
                self.lab.cut_database();
                "database cut".to_owned()
            }
            Fault::ClockStep { seconds } => {
                self.clock_offset_s += seconds;
                let offset = format!("{:+}s", self.clock_offset_s);
                std::fs::write(&self.clock_file, &offset).unwrap();
                format!("wall clock of n{STEPPED} stepped {seconds:+} s (now {offset})")
            }
        };
        println!("{what}");
        self.faults.push((now_ms(), what));
        std::thread::sleep(Duration::from_millis(step.hold_ms));
        self.lab.heal();
        if let Some(node) = stopped {
            self.nodes[node].start(self.history);
        }
        self.faults.push((now_ms(), "healed".to_owned()));
        std::thread::sleep(Duration::from_millis(step.pause_ms));
    }

    fn stop(&mut self, node: usize, signal: Signal) {
        self.nodes[node].stop(signal);
        self.history.lock().unwrap().push(Line {
            at_ms: now_ms(),
            node,
            message: "stopped".to_owned(),
            level: String::new(),
            fields: serde_json::Value::Null,
        });
    }

    /// The node that last said it became the writer and has not stopped or stepped down since;
    /// node 0 if none has.
    fn writer(&self) -> usize {
        let mut writer = BTreeMap::new();
        for line in self.history.lock().unwrap().iter() {
            match line.message.as_str() {
                "writer role" => {
                    let now = line.fields.get("writer").and_then(|w| w.as_bool());
                    writer.insert(line.node, (now == Some(true), line.at_ms));
                }
                "stopped" => {
                    writer.insert(line.node, (false, line.at_ms));
                }
                _ => {}
            }
        }
        writer
            .into_iter()
            .filter(|(_, (is, _))| *is)
            .max_by_key(|(_, (_, at))| *at)
            .map_or(0, |(node, _)| node)
    }
}

/// Per price id, from every node's log: who published it, when, and the first quorum anywhere.
struct Stories {
    origin: BTreeMap<String, usize>,
    published_at: BTreeMap<String, u64>,
    quorum_at: BTreeMap<String, u64>,
}

impl Stories {
    fn from(lines: &[Line]) -> Stories {
        let mut stories = Stories {
            origin: BTreeMap::new(),
            published_at: BTreeMap::new(),
            quorum_at: BTreeMap::new(),
        };
        for line in lines {
            let Some(id) = line.field("id") else { continue };
            match line.message.as_str() {
                "published" => {
                    stories.origin.insert(id.to_owned(), line.node);
                    stories.published_at.insert(id.to_owned(), line.at_ms);
                }
                "quorum reached" => {
                    stories.quorum_at.entry(id.to_owned()).or_insert(line.at_ms);
                }
                _ => {}
            }
        }
        stories
    }
}

struct Figures {
    rows: usize,
    checked: usize,
    bound_ms: u64,
    first_store_ms: Option<u64>,
    to_storage_ms: Vec<u64>,
    after_writer_killed_ms: Option<u64>,
    usage: Vec<nodes::Usage>,
    seconds: u64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quantile = |q: f64| quantile(&self.to_storage_ms, q);
        writeln!(
            f,
            "{} s, {} rows; {} prices at quorum held to the {} ms bound",
            self.seconds, self.rows, self.checked, self.bound_ms
        )?;
        writeln!(
            f,
            "first stored {:?} ms after the start",
            self.first_store_ms
        )?;
        writeln!(
            f,
            "publication to storage: p50 {} ms, p99 {} ms, max {} ms",
            quantile(0.5),
            quantile(0.99),
            quantile(1.0)
        )?;
        writeln!(
            f,
            "next price stored {:?} ms after the writer was killed",
            self.after_writer_killed_ms
        )?;
        for (i, usage) in self.usage.iter().enumerate() {
            writeln!(
                f,
                "n{i}: peak RSS {} MiB, CPU {:.1} s",
                usage.peak_rss_kib / 1024,
                usage.cpu_s
            )?;
        }
        Ok(())
    }
}
