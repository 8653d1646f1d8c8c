//! Recording a node as its driver drives it.

use crate::crypto::Signature;
use crate::drive::Io;
use crate::io::{Action, Event};
use crate::node::Node;
use crate::price::PriceId;

use super::encoding::put_fed;
use super::{ActionHash, CHECK_EVERY, MAGIC, Record, Start};

/// Records a driver's node: [`Tape::drive`] is [`Node::drive`] with every event the node handles
/// appended to [`Tape::bytes`] as a record, every action hashed, and a check once at least
/// [`CHECK_EVERY`] events have passed since the last. The driver writes the bytes out and clears
/// them. A driver that calls [`Node::handle`] itself records with [`Tape::handled`],
/// [`Tape::acted`] and [`Tape::drained`] instead.
pub struct Tape {
    pub bytes: Vec<u8>,
    hash: ActionHash,
    fed: u64,
    checked: u64,
}

impl Tape {
    /// A tape for a node just created with `start`'s arguments.
    pub fn new(start: Start) -> Tape {
        let mut bytes = MAGIC.to_vec();
        Record::Start(start).encode(&mut bytes);
        Tape {
            bytes,
            hash: ActionHash::default(),
            fed: 0,
            checked: 0,
        }
    }

    /// A tape for a new file that continues a recording: it begins with `node` as it is now.
    pub fn resume(start: Start, node: &Node) -> Tape {
        let mut tape = Tape::new(start);
        Record::Snapshot(node.snapshot()).encode(&mut tape.bytes);
        tape
    }

    /// [`Node::drive`], recorded.
    pub fn drive(&mut self, node: &mut Node, now: u64, event: Event, io: &mut impl Io) {
        node.drive(
            now,
            event,
            &mut Taped {
                tape: self,
                io,
                now,
            },
        );
        self.drained();
    }

    /// The node is about to handle `event` at `now`.
    pub fn handled(&mut self, now: u64, event: &Event) {
        self.fed += 1;
        put_fed(&mut self.bytes, now, event);
    }

    /// The node produced `action`.
    pub fn acted(&mut self, action: &Action) {
        self.hash.add(action);
    }

    /// The node has no action left: a check is recorded here if one is due, and a replay
    /// compares at the same point.
    pub fn drained(&mut self) {
        if self.fed - self.checked >= CHECK_EVERY {
            self.check();
        }
    }

    /// Records a check now, if any event came since the last: for a node that stops, so that
    /// its last events are checked too.
    pub fn finish(&mut self) {
        if self.fed > self.checked {
            self.check();
        }
    }

    fn check(&mut self) {
        self.checked = self.fed;
        Record::Check {
            fed: self.fed,
            hash: self.hash.value(),
        }
        .encode(&mut self.bytes);
    }
}

struct Taped<'a, I> {
    tape: &'a mut Tape,
    io: &'a mut I,
    now: u64,
}

impl<I: Io> Io for Taped<'_, I> {
    fn sign(&mut self, id: PriceId, digest: &[u8; 32]) -> Signature {
        self.tape.acted(&Action::Sign {
            id,
            digest: *digest,
        });
        self.io.sign(id, digest)
    }

    fn execute(&mut self, action: Action) {
        self.tape.acted(&action);
        self.io.execute(action);
    }

    fn fed(&mut self, event: &Event) {
        self.tape.handled(self.now, event);
        self.io.fed(event);
    }
}
