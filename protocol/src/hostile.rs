//! A hostile world around one node, for property tests and fuzzing: arbitrary sequences of events,
//! including forged, stale, equivocating and junk messages, answered signature requests (some with
//! the wrong key) and database answers in any order. After every event it checks what must always
//! hold: one verdict per message, no id signed twice nor past its co-signing age, retransmissions
//! within their bound, only valid signatures broadcast or accepted
//! (gossip forwards what is accepted), every write passing [`crate::audit`], and memory within the
//! configured bound.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};

use crate::config::{Config, Signers};
use crate::crypto::{Address, Keypair};
use crate::io::{Action, Broadcast, Event, HeartbeatRow, MessageRef, Verdict, WriteOutcome};
use crate::node::Node;
use crate::price::{Feed, Price, PriceBody, PriceId};
use crate::signatures::Signatures;
use crate::wire::Message;

const T0: u64 = 1_767_225_600_000;
const PRICE: u128 = 301_245_000_000;
/// Keys 0 to 3 are allowlisted; key 4 is an outsider.
const KEYS: usize = 5;

/// How the node under test is set up.
#[derive(Debug, Clone, Arbitrary)]
pub struct Setup {
    /// Which allowlisted key the node has (mod 4).
    pub me: u8,
    /// Quorum 1 to 4 (mod 4, plus 1).
    pub quorum: u8,
    /// Tiny memory bounds, so that they are hit.
    pub small: bool,
}

/// One thing that happens to the node.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Time passes (in 10 ms units) and due timers fire.
    Advance(u16),
    /// Sources answer with prices off by these many tenths of a percent.
    Fetched(Vec<i8>),
    /// A price from key `origin` (mod 5), signed by the keys whose bits are set in `signers`,
    /// `deviation` tenths of a percent off, observed `age_s` seconds ago (negative: in the
    /// future; most often within 5 minutes either way, where the co-signing rules act), with id
    /// sequence `sequence` (mod 3, so ids collide), and maybe one byte changed.
    Price {
        origin: u8,
        signers: u8,
        deviation: i8,
        age_s: i16,
        sequence: u8,
        corrupt: Option<(u16, u8)>,
    },
    /// A price sent before (`which`, modulo how many), signed again by the keys whose bits are set
    /// in `signers`, maybe with one signature (`corrupt`, modulo how many) changed in one byte:
    /// copies of known prices, as gossip relays them, and forgeries built from them.
    Again {
        which: u8,
        signers: u8,
        corrupt: Option<u8>,
    },
    /// Raw bytes from a peer.
    Junk(Vec<u8>),
    /// The pending signature request `which` is answered, by the node's key or another.
    AnswerSign {
        which: u8,
        honest: bool,
    },
    /// The heartbeat table is read: this node's row and the others' with these ages (ms), and
    /// maybe every id written so far reported stored.
    Database {
        my_age_ms: u16,
        others_age_ms: u16,
        stored: bool,
    },
    Unreachable,
    /// The pending write `which` finishes: inserted, already present or failed (mod 3).
    FinishWrite {
        which: u8,
        outcome: u8,
    },
    Peers(u8),
}

/// An invariant that did not hold, with what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

pub struct Hostile {
    node: Node,
    keys: Vec<Keypair>,
    config: Config,
    now: u64,
    pending_signs: Vec<(PriceId, [u8; 32])>,
    pending_writes: Vec<PriceId>,
    signed_ids: BTreeSet<PriceId>,
    written: BTreeSet<PriceId>,
    /// Retransmissions sent so far, per price.
    retransmits: BTreeMap<PriceId, u32>,
    /// The gossip id of every broadcast.
    broadcast_ids: BTreeSet<[u8; 32]>,
    /// Bodies of the prices sent so far, for [`Op::Again`].
    sent: Vec<PriceBody>,
    gossip_in: u64,
    verdicts_out: u64,
}

fn check(holds: bool, what: impl FnOnce() -> String) -> Result<(), Violation> {
    if holds {
        Ok(())
    } else {
        Err(Violation(what()))
    }
}

impl Hostile {
    pub fn new(setup: &Setup) -> Hostile {
        let keys = keys().to_vec();
        let list: BTreeSet<Address> = keys[..4].iter().map(Keypair::address).collect();
        let feed = Feed::eth_usd();
        let mut config = Config::new("hostile", feed, Signers::allowlist(list));
        config.quorum = usize::from(setup.quorum % 4) + 1;
        config.min_sources = 1;
        config.min_peers = 0;
        if setup.small {
            config.max_prices = 6;
            config.max_pending_per_origin = 2;
        }
        // Short enough that the retransmission bound, not the ready TTL, ends retransmissions.
        config.retransmit_after_ms = 1_000;
        let me = keys[usize::from(setup.me % 4)].address();
        let node = Node::new(config.clone(), me, 7, T0).expect("a valid config");
        Hostile {
            node,
            keys,
            config,
            now: T0,
            pending_signs: Vec::new(),
            pending_writes: Vec::new(),
            signed_ids: BTreeSet::new(),
            written: BTreeSet::new(),
            retransmits: BTreeMap::new(),
            broadcast_ids: BTreeSet::new(),
            sent: Vec::new(),
            gossip_in: 0,
            verdicts_out: 0,
        }
    }

    /// Reads a setup and then events from `bytes` until they run out, checking after each event.
    pub fn run(bytes: &[u8]) -> Result<(), Violation> {
        let mut input = Unstructured::new(bytes);
        let Ok(setup) = Setup::arbitrary(&mut input) else {
            return Ok(());
        };
        let mut world = Hostile::new(&setup);
        // `arbitrary` keeps inventing values from exhausted input, so stop when it is empty.
        while !input.is_empty() {
            let Ok(op) = Op::arbitrary(&mut input) else {
                return Ok(());
            };
            world.apply(op)?;
        }
        Ok(())
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn apply(&mut self, op: Op) -> Result<(), Violation> {
        let me = self.node.address();
        let event = match op {
            Op::Advance(ticks) => {
                self.now += u64::from(ticks) * 10;
                Event::TimerDue
            }
            Op::Fetched(offsets) => Event::PricesFetched {
                answered: offsets.iter().map(|&d| off_by(d)).collect(),
            },
            Op::Price {
                origin,
                signers,
                deviation,
                age_s,
                sequence,
                corrupt,
            } => {
                let origin = &self.keys[usize::from(origin) % KEYS];
                let age_s = if age_s.unsigned_abs() < 20_000 {
                    age_s % 300
                } else {
                    age_s
                };
                let observed = self.now.saturating_add_signed(-i64::from(age_s) * 1000);
                let body = PriceBody {
                    id: PriceId::mint(observed, u16::from(sequence % 3), origin.address()),
                    feed: self.config.feed,
                    price: off_by(deviation),
                    decimals: self.config.decimals,
                    observed_at_ms: observed,
                };
                self.sent.push(body);
                let Some(mut bytes) = self.signed(body, signers, 0) else {
                    return Ok(());
                };
                if let Some((at, value)) = corrupt {
                    let at = usize::from(at) % bytes.len();
                    bytes[at] = value;
                }
                gossip(bytes)
            }
            Op::Again {
                which,
                signers,
                corrupt,
            } => {
                if self.sent.is_empty() {
                    return Ok(());
                }
                let body = self.sent[usize::from(which) % self.sent.len()];
                // A copy again, under another nonce.
                let Some(mut bytes) = self.signed(body, signers, u64::from(which)) else {
                    return Ok(());
                };
                if let Some(k) = corrupt {
                    // Entries of 85 bytes from offset 91; a signature's first byte is 20 in.
                    let count = usize::from(bytes[90]);
                    bytes[91 + 85 * (usize::from(k) % count) + 20] ^= 1;
                }
                gossip(bytes)
            }
            Op::Junk(bytes) => gossip(bytes),
            Op::AnswerSign { which, honest } => {
                if self.pending_signs.is_empty() {
                    return Ok(());
                }
                let (id, digest) = self
                    .pending_signs
                    .remove(usize::from(which) % self.pending_signs.len());
                let key = if honest {
                    self.keys.iter().find(|k| k.address() == me)
                } else {
                    self.keys.last()
                };
                Event::Signed {
                    id,
                    signature: key.expect("keys exist").sign(&digest),
                }
            }
            Op::Database {
                my_age_ms,
                others_age_ms,
                stored,
            } => Event::DatabaseRead {
                heartbeats: self
                    .keys
                    .iter()
                    .map(|k| HeartbeatRow {
                        node: k.address(),
                        age_ms: u64::from(if k.address() == me {
                            my_age_ms
                        } else {
                            others_age_ms
                        }),
                    })
                    .collect(),
                stored: if stored {
                    self.written.iter().copied().collect()
                } else {
                    Vec::new()
                },
            },
            Op::Unreachable => Event::DatabaseUnreachable,
            Op::FinishWrite { which, outcome } => {
                if self.pending_writes.is_empty() {
                    return Ok(());
                }
                let id = self
                    .pending_writes
                    .remove(usize::from(which) % self.pending_writes.len());
                let outcomes = [
                    WriteOutcome::Inserted,
                    WriteOutcome::AlreadyPresent,
                    WriteOutcome::Failed,
                ];
                Event::WriteFinished {
                    id,
                    outcome: outcomes[usize::from(outcome % 3)],
                }
            }
            Op::Peers(count) => Event::PeersChanged {
                count: usize::from(count % 8),
            },
        };
        self.feed(event)
    }

    /// The encoded message of `body` signed by the keys whose bits are set in `signers`.
    fn signed(&self, body: PriceBody, signers: u8, nonce: u64) -> Option<Vec<u8>> {
        let network_id = self.node.network_id();
        let digest = body.digest(&network_id);
        let signatures: Signatures = (0..KEYS)
            .filter(|k| signers & (1 << k) != 0)
            .map(|k| (self.keys[k].address(), self.keys[k].sign(&digest)))
            .collect();
        let mut message = Message::new(network_id, body, signatures)?;
        message.nonce = nonce;
        Some(message.encode())
    }

    fn feed(&mut self, event: Event) -> Result<(), Violation> {
        let received = match &event {
            Event::Gossip { bytes, .. } => Some(bytes.clone()),
            _ => None,
        };
        self.gossip_in += u64::from(received.is_some());
        self.node.handle(self.now, event);
        let network_id = self.node.network_id();
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Sign { id, digest } => {
                    check(self.signed_ids.insert(id), || {
                        format!("asked to sign {id} twice")
                    })?;
                    let age = self.now.saturating_sub(id.unix_ms());
                    check(age <= self.config.max_age_ms, || {
                        format!("asked to sign {id}, observed {age} ms ago")
                    })?;
                    self.pending_signs.push((id, digest));
                }
                Action::Write(row) => {
                    let id = row.message.body.id;
                    row.audit(&self.config)
                        .map_err(|flaw| Violation(format!("wrote {id}: {flaw}")))?;
                    self.written.insert(id);
                    self.pending_writes.push(id);
                }
                Action::Broadcast { id, why, bytes } => {
                    all_signatures_valid(&bytes, &network_id)
                        .map_err(|why| Violation(format!("broadcast {why}")))?;
                    if why == Broadcast::Retransmit {
                        let sent = self.retransmits.entry(id).or_default();
                        *sent += 1;
                        check(*sent <= self.config.max_retransmits, || {
                            format!("retransmitted {id} {sent} times")
                        })?;
                    }
                    // Every send its own gossip id: gossipsub refuses bytes it holds.
                    check(self.broadcast_ids.insert(crate::message_id(&bytes)), || {
                        format!("{why:?} of {id} repeats the bytes of an earlier broadcast")
                    })?;
                }
                Action::Verdict { verdict, .. } => {
                    self.verdicts_out += 1;
                    if let (Verdict::Accept, Some(bytes)) = (verdict, &received) {
                        all_signatures_valid(bytes, &network_id)
                            .map_err(|why| Violation(format!("accepted (so forwarded) {why}")))?;
                    }
                }
                _ => {}
            }
        }
        check(self.gossip_in == self.verdicts_out, || {
            format!(
                "{} messages, {} verdicts",
                self.gossip_in, self.verdicts_out
            )
        })?;
        self.node
            .check_book()
            .map_err(|broken| Violation(format!("bookkeeping: {broken}")))
    }
}

/// Ok when `bytes` decode and every signature in them is valid; otherwise what is wrong.
fn all_signatures_valid(bytes: &[u8], network_id: &[u8; 32]) -> Result<(), String> {
    let message = Message::decode(bytes).map_err(|e| format!("undecodable bytes: {e}"))?;
    let (id, digest) = (message.body.id, message.body.digest(network_id));
    match message
        .signatures()
        .iter()
        .find(|(signer, signature)| !signature.is_by(&digest, **signer))
    {
        Some((signer, _)) => Err(format!("a bad signature by {signer} on {id}")),
        None => Ok(()),
    }
}

/// Keys with secrets 1 to 5, derived once per process: a fuzzer runs the harness many times.
fn keys() -> &'static [Keypair] {
    static DERIVED: std::sync::OnceLock<Vec<Keypair>> = std::sync::OnceLock::new();
    DERIVED.get_or_init(|| crate::testing::keys(KEYS as u8))
}

/// Most often within 1.5 % of the reference price, where co-signing decisions are made.
fn off_by(tenths_of_percent: i8) -> Price {
    let tenths_of_percent = if tenths_of_percent.unsigned_abs() < 96 {
        tenths_of_percent % 16
    } else {
        tenths_of_percent
    };
    let delta = PRICE as i128 * i128::from(tenths_of_percent) / 1000;
    Price((PRICE as i128 + delta) as u128)
}

fn gossip(bytes: Vec<u8>) -> Event {
    Event::Gossip {
        message: MessageRef { token: 1 },
        bytes,
    }
}
