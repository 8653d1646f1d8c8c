//! The one loop every driver runs around a [`Node`]: feed an event, drain every action, and feed the
//! answers that exist at once (signatures: the key lives in the driver's process) after the drain,
//! never during it. The production runtime and the simulation both call [`Node::drive`], so they
//! cannot differ in the order in which a node sees its own signatures.
//!
//! A signature the driver made is an input like any other ([`Event::Signed`]): a node can be
//! replayed from its inputs without its private key.

use std::collections::VecDeque;

use crate::crypto::Signature;
use crate::io::{Action, Event};
use crate::node::Node;
use crate::price::PriceId;

/// What a driver does for its node.
pub trait Io {
    /// Signs a digest with the node's key (answered by [`Node::drive`] as [`Event::Signed`]).
    fn sign(&mut self, id: PriceId, digest: &[u8; 32]) -> Signature;
    /// Carries out any other action; its outcome, if any, comes back later as an event.
    fn execute(&mut self, action: Action);
    /// Called with each event just before the node handles it (for tracing).
    fn fed(&mut self, _event: &Event) {}
}

impl Node {
    /// Handles `event` at `now`, then drains every action into `io`, then handles the signatures
    /// `io` made while draining, each drained in turn, until nothing is left.
    pub fn drive(&mut self, now: u64, event: Event, io: &mut impl Io) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            io.fed(&event);
            self.handle(now, event);
            while let Some(action) = self.poll_action() {
                match action {
                    Action::Sign { id, digest } => {
                        let signature = io.sign(id, &digest);
                        queue.push_back(Event::Signed { id, signature });
                    }
                    action => io.execute(action),
                }
            }
        }
    }
}
