//! The flight recorder's format: every node of a cluster replays exactly from its recording, an
//! altered event is caught at the first check after it, and a recording cut off mid-write reads
//! up to its last whole record.

mod common;

use common::cluster::Cluster;
use protocol::journal::{self, Divergence, JournalError, Record};
use protocol::{Event, Price};

const T0: u64 = 1_767_225_600_000;

fn recorded_cluster() -> Cluster {
    let keys = common::keys(4);
    let mut config = common::config(&keys);
    config.min_peers = 3;
    let mut cluster = Cluster::new(keys, config, T0);
    cluster.run_until(T0 + 500_000);
    assert_eq!(cluster.stored.len(), 4, "the cluster stored its prices");
    cluster
}

/// What replaying a recording found: the checks that passed, or the first divergence.
fn replay(bytes: &[u8]) -> Result<u64, Divergence> {
    match journal::replay(bytes, None, |replay| replay, |_| {}) {
        Ok(replayed) => Ok(replayed.checks),
        Err(journal::ReplayError::Diverged { divergence, .. }) => Err(divergence),
        Err(error) => panic!("{error}"),
    }
}

fn decoded(bytes: &[u8]) -> Vec<(usize, Record)> {
    journal::records(bytes)
        .expect("a recording")
        .map(|r| r.expect("well-formed records"))
        .collect()
}

fn encoded(records: &[(usize, Record)]) -> Vec<u8> {
    let mut bytes = journal::MAGIC.to_vec();
    records.iter().for_each(|(_, r)| r.encode(&mut bytes));
    bytes
}

#[test]
fn every_node_of_a_cluster_replays_exactly() {
    let cluster = recorded_cluster();
    for (i, tape) in cluster.tapes.iter().enumerate() {
        let records = decoded(&tape.bytes);
        assert_eq!(
            encoded(&records),
            tape.bytes,
            "n{i}: records encode canonically"
        );
        let fed = records
            .iter()
            .filter(|(_, r)| matches!(r, Record::Fed { .. }))
            .count();
        assert!(fed > 100, "n{i} handled {fed} events");
        let checks = replay(&tape.bytes).unwrap_or_else(|d| panic!("n{i}: {d}"));
        assert_eq!(checks, fed as u64 / journal::CHECK_EVERY, "n{i}");
    }
}

#[test]
fn a_file_that_begins_from_a_snapshot_replays_alone() {
    let keys = common::keys(4);
    let mut config = common::config(&keys);
    config.min_peers = 3;
    let mut cluster = Cluster::new(keys, config, T0);
    let mut files = vec![Vec::new(); 4];
    // Rotated while prices collect signatures, wait to be written and are forgotten.
    for until in [60_000, 95_000, 130_000, 170_000, 320_000, 500_000] {
        cluster.run_until(T0 + until);
        for (i, file) in files.iter_mut().enumerate() {
            file.push(cluster.rotate_tape(i).bytes);
        }
    }
    assert_eq!(cluster.stored.len(), 4);
    for (i, files) in files.iter().enumerate() {
        for (k, bytes) in files.iter().enumerate() {
            replay(bytes).unwrap_or_else(|d| panic!("n{i}, file {k}: {d}"));
        }
        // Each snapshot restores to a node whose snapshot is the same bytes.
        for bytes in &files[1..] {
            let records = decoded(bytes);
            let (Record::Start(start), Record::Snapshot(snapshot)) = (&records[0].1, &records[1].1)
            else {
                panic!("n{i}: a rotated file begins with its start and a snapshot");
            };
            let node = protocol::Node::restore(start.config.clone(), start.me, snapshot)
                .expect("a snapshot restores");
            assert_eq!(&node.snapshot(), snapshot, "n{i}");
        }
    }
}

#[test]
fn an_altered_event_diverges_at_the_first_check_after_it() {
    let cluster = recorded_cluster();
    let mut records = decoded(&cluster.tapes[0].bytes);
    // The first observation whose answer mattered: the source said one unit more.
    let (altered, fed_before) = records
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, Record::Fed { .. }))
        .enumerate()
        .find_map(|(k, (index, (_, r)))| match r {
            Record::Fed {
                event: Event::PricesFetched { answered },
                ..
            } if !answered.is_empty() => Some((index, k as u64)),
            _ => None,
        })
        .expect("the node observed");
    let Record::Fed {
        event: Event::PricesFetched { answered },
        ..
    } = &mut records[altered].1
    else {
        unreachable!()
    };
    answered[0] = Price(answered[0].0 + 1);
    let divergence = replay(&encoded(&records)).expect_err("the altered recording diverges");
    let first_check_after = (fed_before / journal::CHECK_EVERY + 1) * journal::CHECK_EVERY;
    assert_eq!(divergence.fed, divergence.replayed_fed, "{divergence}");
    assert!(
        divergence.fed > fed_before && divergence.fed <= first_check_after,
        "event {} altered, divergence reported after {}",
        fed_before + 1,
        divergence.fed
    );
}

#[test]
fn a_recording_cut_off_mid_write_reads_to_its_last_whole_record() {
    let cluster = recorded_cluster();
    let bytes = &cluster.tapes[1].bytes;
    let ends: Vec<usize> = {
        let records = decoded(bytes);
        let mut ends: Vec<usize> = records.iter().skip(1).map(|(offset, _)| *offset).collect();
        ends.push(bytes.len());
        ends
    };
    // Every cut within the first records, then a stride through the rest.
    let cuts = (journal::MAGIC.len()..4_000).chain((4_000..bytes.len()).step_by(97));
    for cut in cuts {
        let mut records = journal::records(&bytes[..cut]).expect("a recording");
        let mut whole = 0;
        for record in records.by_ref() {
            record.expect("whole records");
            whole += 1;
        }
        let expected = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(whole, expected, "cut at {cut}");
        let last_end = ends[..expected]
            .last()
            .copied()
            .unwrap_or(journal::MAGIC.len());
        assert_eq!(records.cut_off(), cut - last_end, "cut at {cut}");
    }
}

#[test]
fn corrupt_bytes_are_an_error_never_a_panic() {
    assert_eq!(
        journal::records(b"not a recording").err(),
        Some(JournalError::Magic)
    );
    let cluster = recorded_cluster();
    let bytes = &cluster.tapes[2].bytes;
    let second = decoded(bytes)[1].0;
    for (at, value) in [(second, 0xff), (second + 3, 0x7f), (second + 4, 9)] {
        let mut corrupt = bytes.clone();
        corrupt[at] = value;
        let failed = journal::records(&corrupt)
            .expect("a recording")
            .find_map(|r| r.err());
        assert!(
            matches!(failed, Some(JournalError::Record { offset, .. }) if offset == second),
            "byte {at} set to {value:#x}: {failed:?}"
        );
    }
}
