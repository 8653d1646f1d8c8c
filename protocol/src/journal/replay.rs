//! Feeding a recording back to a fresh node, and comparing at every check.

use crate::config::ConfigError;
use crate::io::{Action, Event};
use crate::node::Node;
use crate::snapshot::RestoreError;

use super::{ActionHash, JournalError, Record, Start, records};

/// What [`replay`] shows its watcher, in the recording's order.
pub enum Seen<'a> {
    Start(&'a Start),
    /// The file continues a rotated one from this snapshot of the node, taken at `at`.
    Snapshot {
        at: u64,
        bytes: &'a [u8],
    },
    Fed {
        now: u64,
        event: &'a Event,
        actions: &'a [Action],
    },
    /// The recording's end (or `until`), with the node as the replay left it.
    End(&'a Node),
}

/// What a replay that matched found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub events: u64,
    pub checks: u64,
    /// Bytes of a last record cut off mid-write.
    pub cut_off: usize,
    /// Stopped at `until` before the recording's end.
    pub stopped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("the recording does not begin with the node's start: is it a flight recording?")]
    NoStart,
    #[error("the recorded config: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Restore(#[from] RestoreError),
    /// Between the check after event `from` (at `from_at`, the node's time) and the one at
    /// byte `offset`.
    #[error("between event {from} and event {to}, at byte {offset}: {divergence}", to = divergence.fed)]
    Diverged {
        divergence: Divergence,
        from: u64,
        from_at: u64,
        offset: usize,
    },
}

/// Replays a whole recording on a fresh node and compares at every check: the node is made by
/// `prepare` from the recording's start (a driver that checks signatures its own way says so
/// there), events after `until` are not fed, and `watch` sees the start, a snapshot, and each
/// event with the actions it caused.
pub fn replay(
    bytes: &[u8],
    until: Option<u64>,
    prepare: impl FnOnce(Replay) -> Replay,
    mut watch: impl FnMut(Seen),
) -> Result<Replayed, ReplayError> {
    let mut records = records(bytes)?;
    let start = match records.next() {
        Some(Ok((_, Record::Start(start)))) => start,
        Some(Err(error)) => return Err(error.into()),
        _ => return Err(ReplayError::NoStart),
    };
    watch(Seen::Start(&start));
    let mut replay = prepare(Replay::new(&start)?);
    let mut replayed = Replayed {
        events: 0,
        checks: 0,
        cut_off: 0,
        stopped: false,
    };
    let (mut from, mut from_at) = (0, start.started_at);
    for record in records.by_ref() {
        let (offset, record) = record?;
        match record {
            Record::Start(_) => return Err(ReplayError::NoStart),
            Record::Snapshot(snapshot) => {
                replay.restore(&snapshot)?;
                from_at = replay.node.now();
                watch(Seen::Snapshot {
                    at: from_at,
                    bytes: &snapshot,
                });
            }
            Record::Fed { now, event } => {
                if until.is_some_and(|until| now > until) {
                    replayed.stopped = true;
                    break;
                }
                let actions = replay.feed(now, event.clone());
                watch(Seen::Fed {
                    now,
                    event: &event,
                    actions: &actions,
                });
                replayed.events += 1;
            }
            Record::Check { fed, hash } => {
                replay
                    .check(fed, hash)
                    .map_err(|divergence| ReplayError::Diverged {
                        divergence,
                        from,
                        from_at,
                        offset,
                    })?;
                replayed.checks += 1;
                (from, from_at) = (fed, replay.node.now());
            }
        }
    }
    replayed.cut_off = records.cut_off();
    watch(Seen::End(&replay.node));
    Ok(replayed)
}

/// A recorded node fed its recording again.
pub struct Replay {
    pub node: Node,
    hash: ActionHash,
    fed: u64,
}

/// A replay that did not act as the recording says the node did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the recording checks after {fed} events ({recorded:016x}), the replay had {replayed_fed} \
     events there ({replayed:016x}): {}",
    if fed == replayed_fed { "the node acted differently" } else { "events are missing or extra" }
)]
pub struct Divergence {
    /// Where the recording checked: after this many events.
    pub fed: u64,
    pub replayed_fed: u64,
    /// The hash of every action up to there, recorded and replayed.
    pub recorded: u64,
    pub replayed: u64,
}

impl Replay {
    pub fn new(start: &Start) -> Result<Replay, ConfigError> {
        let node = Node::new(start.config.clone(), start.me, start.seed, start.started_at)?;
        Ok(Replay {
            node,
            hash: ActionHash::default(),
            fed: 0,
        })
    }

    /// Checks signatures as the recorded node did, when that was not [`crate::Recover`]: for the
    /// simulation, which records nodes built with a shared memo of recoveries.
    #[cfg(feature = "simulation")]
    pub fn with_signature_check(
        mut self,
        check: std::sync::Arc<dyn crate::SignatureCheck>,
    ) -> Replay {
        self.node.check = check;
        self
    }

    /// Continues from a recorded snapshot instead of the start.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let config = self.node.config.clone();
        let check = self.node.check.clone();
        self.node = Node::restore(config, self.node.address(), snapshot)?;
        self.node.check = check;
        Ok(())
    }

    /// Feeds one recorded event; returns the actions it caused (a [`Action::Sign`] among them is
    /// answered by the recording's next event, as the driver answered it).
    pub fn feed(&mut self, now: u64, event: Event) -> Vec<Action> {
        self.fed += 1;
        self.node.handle(now, event);
        let mut actions = Vec::new();
        while let Some(action) = self.node.poll_action() {
            self.hash.add(&action);
            actions.push(action);
        }
        actions
    }

    /// Compares with a recorded check.
    pub fn check(&self, fed: u64, hash: u64) -> Result<(), Divergence> {
        if fed == self.fed && hash == self.hash.value() {
            return Ok(());
        }
        Err(Divergence {
            fed,
            replayed_fed: self.fed,
            recorded: hash,
            replayed: self.hash.value(),
        })
    }
}
