//! What the simulation watches while it runs: a hash over every action every node took, with the
//! bytes it sent, signed and wrote (two runs of one seed must agree on it), the last few of them for a failure's story, and each price's
//! timeline (published, first at quorum at an honest node).

use std::collections::{BTreeMap, VecDeque};

use protocol::{Action, Event, PriceId, Report};

/// Steps kept for the story a failure tells: the last of the whole run, and per price the first
/// and the last few.
const STORY_LEN: usize = 40;
const PRICE_STORY_LEN: usize = 16;

#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub at: u64,
    pub node: usize,
    pub what: What,
    pub id: Option<PriceId>,
    pub detail: u64,
}

/// A step's name, with its hash for the trace worked out when compiled: every step hashes its
/// name, and tens of millions of steps each hashing a dozen bytes in turn was a per cent of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct What {
    pub name: &'static str,
    hash: u64,
}

impl What {
    const fn new(name: &'static str) -> What {
        What {
            name,
            hash: bytes_hash(name.as_bytes()),
        }
    }
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The [`What`] of a name, made when compiled.
macro_rules! what {
    ($name:literal) => {
        const { What::new($name) }
    };
}

#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub published_at: u64,
    pub origin: usize,
    pub quorum_at: Option<u64>,
}

#[derive(Default)]
pub struct Observer {
    hash: u64,
    pub steps: u64,
    story: VecDeque<Step>,
    price_stories: BTreeMap<PriceId, (Vec<Step>, VecDeque<Step>)>,
    pub prices: BTreeMap<PriceId, Timeline>,
    /// The node that most recently became the writer.
    pub writer: Option<usize>,
    pub published: u64,
    pub expired_unstored: u64,
    pub panics: Vec<String>,
}

impl Observer {
    /// Records a step; `content` is a fingerprint of its bytes, for the trace hash only.
    fn note(&mut self, step: Step, content: u64) {
        let id = step.id.map_or(0, |id| id.0 as u64 ^ (id.0 >> 64) as u64);
        for word in [
            step.at,
            step.node as u64,
            step.what.hash,
            id,
            step.detail,
            content,
        ] {
            self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        self.steps += 1;
        if self.story.len() == STORY_LEN {
            self.story.pop_front();
        }
        self.story.push_back(step);
        // Every node reaching quorum, or ignoring a copy, would drown a price's story.
        if let Some(id) = step.id
            && step.what != what!("quorum reached")
        {
            let (first, last) = self.price_stories.entry(id).or_default();
            if first.len() < PRICE_STORY_LEN {
                first.push(step);
            } else {
                if last.len() == PRICE_STORY_LEN {
                    last.pop_front();
                }
                last.push_back(step);
            }
        }
    }

    pub fn trace_hash(&self) -> u64 {
        self.hash
    }

    /// The story of one price if given (its first and last steps), else the run's last steps.
    pub fn story(&self, id: Option<PriceId>) -> Vec<Step> {
        match id.and_then(|id| self.price_stories.get(&id)) {
            Some((first, last)) => first.iter().chain(last).copied().collect(),
            None => self.story.iter().copied().collect(),
        }
    }

    /// `gossip_from`: the sender, when the event is gossip.
    pub fn event(&mut self, at: u64, node: usize, event: &Event, gossip_from: usize) {
        let (what, detail) = match event {
            Event::TimerDue => (what!("timer due"), 0),
            Event::PricesFetched { answered } => (what!("prices fetched"), answered.len() as u64),
            Event::Gossip { .. } => (what!("gossip from"), gossip_from as u64),
            Event::Signed { .. } => (what!("signed"), 0),
            Event::DatabaseRead { heartbeats, stored } => (
                what!("database read"),
                (heartbeats.len() + stored.len()) as u64,
            ),
            Event::DatabaseUnreachable => (what!("database unreachable"), 0),
            Event::WriteFinished { outcome, .. } => (what!("write finished"), *outcome as u64),
            Event::PeersChanged { count } => (what!("peers"), *count as u64),
        };
        let id = match event {
            Event::Signed { id, .. } | Event::WriteFinished { id, .. } => Some(*id),
            _ => None,
        };
        let content = match event {
            Event::Signed { signature, .. } => bytes_hash(&signature.0),
            _ => 0,
        };
        let step = Step {
            at,
            node,
            what,
            id,
            detail,
        };
        self.note(step, content);
    }

    pub fn action(&mut self, at: u64, node: usize, honest: bool, action: &Action) {
        let (what, id, detail) = match action {
            Action::FetchPrices => (what!("fetch prices"), None, 0),
            Action::Sign { id, .. } => (what!("sign"), Some(*id), 0),
            Action::Broadcast { id, why, bytes } => (
                what!("broadcast"),
                Some(*id),
                (*why as u64) << 32 | bytes.len() as u64,
            ),
            Action::Verdict { message, verdict } => (verdict_name(verdict), None, message.token),
            Action::Heartbeat => (what!("heartbeat"), None, 0),
            Action::ReadDatabase { .. } => (what!("read database"), None, 0),
            Action::Write(price) => (
                what!("write"),
                Some(price.message.body.id),
                price.signatures().len() as u64,
            ),
            Action::Report(report) => return self.report(at, node, honest, report),
        };
        let step = Step {
            at,
            node,
            what,
            id,
            detail,
        };
        self.note(step, fingerprint(action));
    }

    fn report(&mut self, at: u64, node: usize, honest: bool, report: &Report) {
        match *report {
            Report::Published { id, .. } => {
                self.published += 1;
                self.prices.insert(
                    id,
                    Timeline {
                        published_at: at,
                        origin: node,
                        quorum_at: None,
                    },
                );
            }
            Report::QuorumReached { id, .. } if honest => {
                if let Some(timeline) = self.prices.get_mut(&id)
                    && timeline.quorum_at.is_none()
                {
                    timeline.quorum_at = Some(at);
                }
            }
            Report::WriterChanged { writer: true } => self.writer = Some(node),
            Report::Expired {
                reached_quorum: true,
                ..
            } if honest => self.expired_unstored += 1,
            _ => {}
        }
        let (what, id) = match *report {
            Report::Published { id, .. } => (what!("published"), Some(id)),
            Report::QuorumReached { id, .. } => (what!("quorum reached"), Some(id)),
            Report::Stored { id, .. } => (what!("stored"), Some(id)),
            Report::Expired { id, .. } => (what!("expired"), Some(id)),
            Report::WriterChanged { writer } => (
                if writer {
                    what!("became writer")
                } else {
                    what!("ceased writing")
                },
                None,
            ),
            _ => return,
        };
        let step = Step {
            at,
            node,
            what,
            id,
            detail: 0,
        };
        self.note(step, 0);
    }
}

/// What an action carries, beyond its kind and id: the bytes sent, signed and written, and the
/// verdict's reason. Two runs that differ in any of them hash differently.
fn fingerprint(action: &Action) -> u64 {
    match action {
        Action::Sign { digest, .. } => bytes_hash(digest),
        Action::Broadcast { bytes, .. } => bytes_hash(bytes),
        Action::Verdict { verdict, .. } => match verdict {
            protocol::Verdict::Accept => 1,
            protocol::Verdict::Ignore(why) => 2 << 8 | *why as u64,
            protocol::Verdict::Reject(why) => 3 << 8 ^ name_hash(why.name()),
        },
        Action::Write(price) => {
            bytes_hash(&price.message.encode())
                ^ bytes_hash(&price.writer.0).rotate_left(1)
                ^ bytes_hash(&price.origin.0).rotate_left(2)
                ^ price.last_signature_at_ms.rotate_left(3)
        }
        Action::ReadDatabase { stored_since } => stored_since.map_or(0, |id| id.0 as u64),
        Action::FetchPrices | Action::Heartbeat | Action::Report(_) => 0,
    }
}

fn verdict_name(verdict: &protocol::Verdict) -> What {
    match verdict {
        protocol::Verdict::Accept => what!("accept"),
        protocol::Verdict::Ignore(_) => what!("ignore"),
        protocol::Verdict::Reject(_) => what!("reject"),
    }
}

fn name_hash(name: &str) -> u64 {
    bytes_hash(name.as_bytes())
}

/// FNV-1a: deterministic across runs and builds, and cheap. A loop by index, as a `const fn` must
/// be.
const fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
