//! The production flight recorder in the simulation (`--record`): every node incarnation records
//! what it is fed with `protocol::journal::Tape`, as the runtime's recorder does, and at the end
//! every recording is replayed on a fresh node and must match at each of its checks, under
//! every fault the run drew (a crash ends a recording mid-way, as it would in production).

use std::sync::Arc;

use protocol::SignatureCheck;
use protocol::journal::{self, Replay};

/// One node incarnation's recording.
pub struct Recording {
    pub node: usize,
    pub bytes: Vec<u8>,
}

/// Replays every recording; the first problem of each that does not replay exactly.
pub fn verify(recordings: &[Recording], check: &Arc<dyn SignatureCheck>) -> Vec<String> {
    recordings
        .iter()
        .filter_map(|r| {
            replay(&r.bytes, check)
                .err()
                .map(|e| format!("n{}: {e}", r.node))
        })
        .collect()
}

fn replay(bytes: &[u8], check: &Arc<dyn SignatureCheck>) -> Result<(), String> {
    let prepare = |replay: Replay| replay.with_signature_check(check.clone());
    journal::replay(bytes, None, prepare, |_| {})
        .map(|_| ())
        .map_err(|e| e.to_string())
}
