//! Which node writes: among fresh heartbeats, the highest score for the current term. Every node
//! that reads the same rows names the same writer, and the writer rotates every term. A stale
//! heartbeat never wins.
//!
//! Each node reads every row each heartbeat, so the table is scanned n times per interval by n
//! nodes: the score is a few arithmetic operations per row (one hash per term, then a mix of the
//! address), and the allowlist is consulted only for a row that would win.

use crate::crypto::{Address, keccak256};
use crate::io::Heartbeat;

pub(crate) fn writer(
    rows: &[Heartbeat],
    stale_ms: u64,
    term: u64,
    eligible: impl Fn(Address) -> bool,
) -> Option<Address> {
    let key = term_key(term);
    let mut best: Option<(u64, Address)> = None;
    for row in rows.iter().filter(|row| row.age_ms <= stale_ms) {
        let candidate = (score(key, row.node), row.node);
        if best.is_none_or(|b| candidate > b) && eligible(row.node) {
            best = Some(candidate);
        }
    }
    best.map(|(_, node)| node)
}

/// The first 8 bytes of keccak256 of the term, big-endian.
fn term_key(term: u64) -> u64 {
    let hash = keccak256(&term.to_be_bytes());
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// The address's first 8 bytes (big-endian) xor the term key, through splitmix64's finaliser.
/// Addresses are hash outputs already; the mix makes each term's order unrelated to the last.
fn score(term_key: u64, node: Address) -> u64 {
    let prefix = u64::from_be_bytes(node.0[..8].try_into().expect("8 bytes"));
    let mut z = prefix ^ term_key;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ages: &[u64]) -> Vec<Heartbeat> {
        ages.iter()
            .enumerate()
            .map(|(i, &age_ms)| Heartbeat {
                node: Address([i as u8; 20]),
                age_ms,
            })
            .collect()
    }

    #[test]
    fn stale_rows_never_win_and_the_writer_rotates() {
        let fresh = rows(&[0, 0, 0, 0]);
        let mut writers = std::collections::BTreeSet::new();
        for term in 0..40 {
            let w = writer(&fresh, 15_000, term, |_| true).unwrap();
            writers.insert(w);
            let mut with_stale = fresh.clone();
            with_stale.iter_mut().find(|r| r.node == w).unwrap().age_ms = 15_001;
            assert_ne!(writer(&with_stale, 15_000, term, |_| true), Some(w));
            assert_ne!(writer(&fresh, 15_000, term, |a| a != w), Some(w));
        }
        assert_eq!(writers.len(), 4, "every node takes a turn");
        assert_eq!(writer(&rows(&[20_000]), 15_000, 0, |_| true), None);
    }
}
