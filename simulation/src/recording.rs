//! The production flight recorder in the simulation (`--record`): every node incarnation records
//! what it is fed with `protocol::journal::Tape`, as the runtime's recorder does, starting a new
//! recording from a snapshot of the node whenever one holds `ROTATE_BYTES` (the runtime rotates
//! at half its limit), and at the end every recording is replayed alone on a fresh node and must
//! match at each of its checks, under every fault the run drew (a crash ends a recording
//! mid-way, as it would in production).

use std::sync::Arc;

use protocol::journal::{self, Replay, Seen, Start, Tape};
use protocol::{Event, Io, Node, SignatureCheck};

/// A recording this long continues in a new one: small, so that every node's snapshots are
/// replayed under the run's faults.
const ROTATE_BYTES: usize = 32 << 10;

/// One node incarnation's recording, or a part of it.
pub struct Recording {
    pub node: usize,
    pub bytes: Vec<u8>,
    /// The recording this one continues from a snapshot.
    pub continues: Option<usize>,
    /// Of its bytes, those of events and checks: what a recorder that never rotates writes.
    pub event_bytes: usize,
}

/// One node incarnation's recorder.
pub struct Recorder {
    tape: Tape,
    start: Start,
    /// Its current recording in the world's list.
    slot: usize,
    /// Bytes of events in the current recording (its start and snapshot aside).
    recorded: usize,
}

impl Recorder {
    pub fn new(recordings: &mut Vec<Recording>, node: usize, start: Start) -> Recorder {
        recordings.push(Recording {
            node,
            bytes: Vec::new(),
            continues: None,
            event_bytes: 0,
        });
        Recorder {
            tape: Tape::new(start.clone()),
            start,
            slot: recordings.len() - 1,
            recorded: 0,
        }
    }

    /// `Node::drive`, recorded.
    pub fn drive(&mut self, node: &mut Node, now: u64, event: Event, io: &mut impl Io) {
        self.tape.drive(node, now, event, io);
    }

    /// Moves what was recorded into the world, where it outlives a crash; once a recording holds
    /// `ROTATE_BYTES` of events it ends with a check and the node goes on in a new one that
    /// begins from a snapshot.
    pub fn keep(&mut self, recordings: &mut Vec<Recording>, node: &Node) {
        self.recorded += self.tape.bytes.len();
        recordings[self.slot].event_bytes += self.tape.bytes.len();
        recordings[self.slot].bytes.append(&mut self.tape.bytes);
        if self.recorded < ROTATE_BYTES {
            return;
        }
        self.finish(recordings);
        let before = self.slot;
        self.tape = Tape::resume(self.start.clone(), node);
        self.slot = recordings.len();
        self.recorded = 0;
        recordings.push(Recording {
            node: recordings[before].node,
            bytes: std::mem::take(&mut self.tape.bytes),
            continues: Some(before),
            event_bytes: 0,
        });
    }

    /// The run ends: the last events are checked, as when a node stops.
    pub fn finish(&mut self, recordings: &mut [Recording]) {
        self.tape.finish();
        recordings[self.slot].event_bytes += self.tape.bytes.len();
        recordings[self.slot].bytes.append(&mut self.tape.bytes);
    }
}

/// Replays every recording alone; the first problem of each that does not replay exactly, or
/// whose snapshot is not the state its predecessor's replay ended in (counters aside): a field
/// the snapshot loses shows there even when the node happens to act alike without it.
pub fn verify(recordings: &[Recording], check: &Arc<dyn SignatureCheck>) -> Vec<String> {
    let mut ended_as: Vec<Option<Vec<u8>>> = Vec::with_capacity(recordings.len());
    let mut problems = Vec::new();
    for recording in recordings {
        let mut end = None;
        let mut snapshot = None;
        let prepare = |replay: Replay| replay.with_signature_check(check.clone());
        let watch = |seen: Seen| match seen {
            Seen::End(node) => end = Some(node.snapshot()),
            Seen::Snapshot { bytes, .. } => snapshot = Some(bytes.to_vec()),
            _ => {}
        };
        let replayed = journal::replay(&recording.bytes, None, prepare, watch);
        let problem = match (replayed, recording.continues) {
            (Err(error), _) => Some(error.to_string()),
            (Ok(_), Some(before)) if ended_as[before] != snapshot => Some(format!(
                "its snapshot is not the state the replay of recording {before} ended in"
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            problems.push(format!("n{}: {problem}", recording.node));
        }
        ended_as.push(end);
    }
    problems
}
