//! Which node writes: among fresh heartbeats, the highest score for the current term. The score is a
//! hash of term and address, so every node that reads the same rows names the same writer, and the
//! writer rotates every term. A stale heartbeat never wins.

use crate::crypto::{Address, keccak256};
use crate::io::Heartbeat;

pub(crate) fn writer(
    rows: &[Heartbeat],
    stale_ms: u64,
    term: u64,
    eligible: impl Fn(Address) -> bool,
) -> Option<Address> {
    rows.iter()
        .filter(|row| row.age_ms <= stale_ms && eligible(row.node))
        .map(|row| (score(term, row.node), row.node))
        .max()
        .map(|(_, node)| node)
}

fn score(term: u64, node: Address) -> [u8; 32] {
    let mut bytes = [0u8; 28];
    bytes[..8].copy_from_slice(&term.to_be_bytes());
    bytes[8..].copy_from_slice(&node.0);
    keccak256(&bytes)
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
