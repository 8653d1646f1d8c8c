//! Which node writes: among fresh heartbeats, the highest score for the current term; the next
//! highest are its backups, in order. Every node that reads the same rows names the same order,
//! and it changes every term. A stale heartbeat never ranks.
//!
//! Each node reads every row each heartbeat, so the table is scanned n times per interval by n
//! nodes: the score is a few arithmetic operations per row (one hash per term, then a mix of the
//! address), and the allowlist is consulted only for rows ranked ahead of the reader, until more
//! of them than the places that matter.

use crate::crypto::{Address, SignatureCheck};
use crate::io::HeartbeatRow;

/// `me`'s place in the term's order of writers among the fresh, eligible rows (0 writes, 1 is the
/// first backup, and so on) if it is below `places`. `None` when `me` has no fresh row or a place
/// at `places` or after.
pub(crate) fn rank(
    rows: &[HeartbeatRow],
    stale_ms: u64,
    key: u64,
    me: Address,
    eligible: impl Fn(Address) -> bool,
    places: usize,
) -> Option<usize> {
    let fresh = |row: &&HeartbeatRow| row.age_ms <= stale_ms;
    let mine = (score(key, me), me);
    // Counted first: most readers find `places` rows ahead of them within a few rows, and stop
    // there, where looking for their own row first read half the table.
    let ahead = rows
        .iter()
        .filter(fresh)
        .filter(|row| (score(key, row.node), row.node) > mine && eligible(row.node))
        .take(places)
        .count();
    if ahead == places {
        return None;
    }
    rows.iter().filter(fresh).find(|row| row.node == me)?;
    Some(ahead)
}

/// The first 8 bytes of keccak256 of the term, big-endian, hashed by the node's check (which may
/// share a memo of it: every node hashes the same term).
pub(crate) fn term_key(term: u64, check: &dyn SignatureCheck) -> u64 {
    let hash = check.keccak(&term.to_be_bytes());
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
    use crate::crypto::Recover;

    fn rows(ages: &[u64]) -> Vec<HeartbeatRow> {
        ages.iter()
            .enumerate()
            .map(|(i, &age_ms)| HeartbeatRow {
                node: Address([i as u8; 20]),
                age_ms,
            })
            .collect()
    }

    /// `rank` in `term`, rows stale after 15 s.
    fn place(
        rows: &[HeartbeatRow],
        term: u64,
        node: Address,
        eligible: impl Fn(Address) -> bool,
        places: usize,
    ) -> Option<usize> {
        rank(
            rows,
            15_000,
            term_key(term, &Recover),
            node,
            eligible,
            places,
        )
    }

    /// The writer of a term: the node ranked 0.
    fn writer(
        rows: &[HeartbeatRow],
        term: u64,
        eligible: impl Fn(Address) -> bool,
    ) -> Option<Address> {
        rows.iter()
            .map(|row| row.node)
            .find(|&node| eligible(node) && place(rows, term, node, &eligible, 1) == Some(0))
    }

    #[test]
    fn stale_rows_never_win_and_the_writer_rotates() {
        let fresh = rows(&[0, 0, 0, 0]);
        let mut writers = std::collections::BTreeSet::new();
        for term in 0..40 {
            let w = writer(&fresh, term, |_| true).unwrap();
            writers.insert(w);
            let mut with_stale = fresh.clone();
            with_stale.iter_mut().find(|r| r.node == w).unwrap().age_ms = 15_001;
            assert_ne!(writer(&with_stale, term, |_| true), Some(w));
            assert_eq!(place(&with_stale, term, w, |_| true, 4), None);
            assert_ne!(writer(&fresh, term, |a| a != w), Some(w));
            // Every fresh node has its own place in the order.
            let mut ranks: Vec<_> = fresh
                .iter()
                .map(|r| place(&fresh, term, r.node, |_| true, 4).unwrap())
                .collect();
            ranks.sort_unstable();
            assert_eq!(ranks, [0, 1, 2, 3]);
            // Past the places asked for, no place.
            let placed = fresh
                .iter()
                .filter(|r| place(&fresh, term, r.node, |_| true, 2).is_some())
                .count();
            assert_eq!(placed, 2);
        }
        assert_eq!(writers.len(), 4, "every node takes a turn");
        assert_eq!(writer(&rows(&[20_000]), 0, |_| true), None);
    }
}
