//! The faults of one run, drawn from its seed: every kind once, in an order and with parameters
//! the seed picks, each held for a while and then healed.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Two sides that cannot reach each other; the first is the minority.
    Partition {
        minority: Vec<usize>,
        majority: Vec<usize>,
    },
    /// The writer of the moment cut from every peer (it keeps the database).
    IsolateWriter,
    /// Packets from `from` to `to` are dropped, the other way they pass.
    OneWay { from: Vec<usize>, to: Vec<usize> },
    /// A share of the packets on these links (both ways) is dropped.
    Loss {
        links: Vec<(usize, usize)>,
        percent: u32,
    },
    /// kill -9 of the writer of the moment; restarted with its data folder when healed.
    KillWriter,
    /// kill -9 of a node; restarted with its data folder when healed.
    Kill { node: usize },
    /// SIGTERM, as docker stop sends it; restarted when healed.
    Terminate { node: usize },
    /// The database unreachable from every node: packets dropped, connections hang.
    DatabaseCut,
    /// The wall clock of the node under libfaketime steps by this many seconds and stays there.
    ClockStep { seconds: i64 },
}

#[derive(Debug, Clone)]
pub struct Step {
    pub fault: Fault,
    pub hold_ms: u64,
    /// Time healed before the next fault.
    pub pause_ms: u64,
}

pub fn draw(seed: u64, nodes: usize) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut below = |n: usize| (rng.next_u64() % n as u64) as usize;
    let mut everyone: Vec<usize> = (0..nodes).collect();
    shuffle(&mut everyone, &mut below);
    let minority = everyone[..(nodes - 1) / 2].to_vec();
    let majority = everyone[(nodes - 1) / 2..].to_vec();
    shuffle(&mut everyone, &mut below);
    let split = 1 + below(nodes - 1);
    let (from, to) = (everyone[..split].to_vec(), everyone[split..].to_vec());
    let mut links = Vec::new();
    for a in 0..nodes {
        for b in a + 1..nodes {
            if below(2) == 0 {
                links.push((a, b));
            }
        }
    }
    let step_seconds = (10 + below(11)) as i64;
    let mut faults = vec![
        Fault::Partition { minority, majority },
        Fault::IsolateWriter,
        Fault::OneWay { from, to },
        Fault::Loss {
            links,
            percent: 20 + below(11) as u32,
        },
        Fault::KillWriter,
        Fault::Kill { node: below(nodes) },
        Fault::Terminate { node: below(nodes) },
        Fault::DatabaseCut,
        Fault::ClockStep {
            seconds: if below(2) == 0 {
                step_seconds
            } else {
                -step_seconds
            },
        },
    ];
    shuffle(&mut faults, &mut below);
    faults
        .into_iter()
        .map(|fault| Step {
            fault,
            hold_ms: 6_000 + below(7) as u64 * 1_000,
            pause_ms: 3_000 + below(5) as u64 * 1_000,
        })
        .collect()
}

fn shuffle<T>(items: &mut [T], below: &mut impl FnMut(usize) -> usize) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(i + 1));
    }
}
