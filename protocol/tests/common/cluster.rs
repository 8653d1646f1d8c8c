//! A few nodes wired together in memory, deterministic and instant: gossip that forwards only what
//! a node accepts (as gossipsub does, with a content-hash seen set), a price source, and a database
//! table with a primary key. Enough to read whole traces; the simulation crate does the real thing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use protocol::*;

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub keys: Vec<Keypair>,
    pub now: u64,
    pub price: Price,
    /// Every row the database accepted, by id.
    pub stored: BTreeMap<PriceId, PriceRow>,
    /// Inserts refused because the id was already stored.
    pub duplicate_inserts: usize,
    pub trace: Vec<String>,
    /// Each node's flight recording (`protocol::journal`).
    pub tapes: Vec<journal::Tape>,
    starts: Vec<journal::Start>,
    beats: BTreeMap<Address, u64>,
    seen: Vec<BTreeSet<[u8; 32]>>,
    inbox: VecDeque<(usize, Event)>,
    received: BTreeMap<(usize, u64), (usize, Vec<u8>)>,
    tokens: u64,
}

impl Cluster {
    pub fn new(keys: Vec<Keypair>, config: Config, start: u64) -> Cluster {
        let nodes: Vec<Node> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Node::new(config.clone(), k.address(), i as u64, start).unwrap())
            .collect();
        let starts: Vec<journal::Start> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| journal::Start {
                config: config.clone(),
                me: k.address(),
                seed: i as u64,
                started_at: start,
            })
            .collect();
        let mut cluster = Cluster {
            tapes: starts.iter().cloned().map(journal::Tape::new).collect(),
            starts,
            seen: vec![BTreeSet::new(); nodes.len()],
            nodes,
            keys,
            now: start,
            price: Price(301_245_000_000),
            stored: BTreeMap::new(),
            duplicate_inserts: 0,
            trace: Vec::new(),
            beats: BTreeMap::new(),
            inbox: VecDeque::new(),
            received: BTreeMap::new(),
            tokens: 0,
        };
        let count = cluster.nodes.len() - 1;
        for i in 0..cluster.nodes.len() {
            cluster.inbox.push_back((i, Event::PeersChanged { count }));
        }
        cluster
    }

    /// Ends node `i`'s recording and begins a new one from a snapshot of the node as it is now,
    /// as the runtime's recorder does when its file is full; returns the one that ended.
    pub fn rotate_tape(&mut self, i: usize) -> journal::Tape {
        let resumed = journal::Tape::resume(self.starts[i].clone(), &self.nodes[i]);
        std::mem::replace(&mut self.tapes[i], resumed)
    }

    /// Runs every event and timer up to `until`.
    pub fn run_until(&mut self, until: u64) {
        loop {
            if let Some((i, event)) = self.inbox.pop_front() {
                self.tapes[i].handled(self.now, &event);
                self.nodes[i].handle(self.now, event);
                while let Some(action) = self.nodes[i].poll_action() {
                    self.tapes[i].acted(&action);
                    self.execute(i, action);
                }
                self.tapes[i].drained();
                continue;
            }
            let next = (0..self.nodes.len())
                .filter_map(|i| self.nodes[i].poll_timeout().map(|(at, _)| (at, i)))
                .min();
            match next {
                Some((at, i)) if at <= until => {
                    self.now = self.now.max(at);
                    self.inbox.push_back((i, Event::TimerDue));
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    fn name(&self, address: Address) -> String {
        match self.keys.iter().position(|k| k.address() == address) {
            Some(i) => format!("n{i}"),
            None => address.to_string(),
        }
    }

    fn signers(&self, message: &Message) -> String {
        let names: Vec<String> = message.signatures().keys().map(|&a| self.name(a)).collect();
        names.join(",")
    }

    fn log(&mut self, i: usize, what: String) {
        let t = self.now % 1_000_000;
        self.trace
            .push(format!("{:>3}.{:03}s n{i} {what}", t / 1000, t % 1000));
    }

    fn execute(&mut self, i: usize, action: Action) {
        match action {
            Action::FetchPrices => {
                self.log(i, "fetch prices".into());
                let answered = vec![self.price];
                self.inbox.push_back((i, Event::PricesFetched { answered }));
            }
            Action::Sign { id, digest } => {
                self.log(i, format!("sign {id}"));
                let signature = self.keys[i].sign(&digest);
                self.inbox.push_back((i, Event::Signed { id, signature }));
            }
            Action::Broadcast { id, why, bytes } => {
                let message = Message::decode(&bytes).expect("nodes send valid messages");
                self.log(
                    i,
                    format!("broadcast {why:?} {id} [{}]", self.signers(&message)),
                );
                self.seen[i].insert(keccak256(&bytes));
                self.send(i, None, bytes);
            }
            Action::Verdict { message, verdict } => {
                let (from, bytes) = self
                    .received
                    .remove(&(i, message.token))
                    .expect("a verdict answers a message");
                self.log(i, format!("verdict on n{from}'s message: {verdict:?}"));
                if verdict == Verdict::Accept {
                    self.send(i, Some(from), bytes);
                }
            }
            Action::Heartbeat => {
                self.beats.insert(self.nodes[i].address(), self.now);
            }
            Action::ReadDatabase { stored_since } => {
                let heartbeats = self
                    .beats
                    .iter()
                    .map(|(&node, &at)| HeartbeatRow {
                        node,
                        age_ms: self.now - at,
                    })
                    .collect();
                let stored = match stored_since {
                    Some(since) => self.stored.range(since..).map(|(&id, _)| id).collect(),
                    None => vec![],
                };
                self.inbox
                    .push_back((i, Event::DatabaseRead { heartbeats, stored }));
            }
            Action::Write(row) => {
                let id = row.message.body.id;
                self.log(i, format!("write {id} [{}]", self.signers(&row.message)));
                let outcome = match self.stored.entry(id) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        self.duplicate_inserts += 1;
                        WriteOutcome::AlreadyPresent
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(*row);
                        WriteOutcome::Inserted
                    }
                };
                self.inbox
                    .push_back((i, Event::WriteFinished { id, outcome }));
            }
            Action::Report(report) => {
                let text = format!("{report:?}");
                let text = self.keys.iter().enumerate().fold(text, |t, (k, key)| {
                    t.replace(&key.address().to_string(), &format!("n{k}"))
                });
                self.log(i, format!("report {text}"));
            }
        }
    }

    /// Sends to every other node (a full mesh) except `skip`, once per node per content.
    fn send(&mut self, from: usize, skip: Option<usize>, bytes: Vec<u8>) {
        let hash = keccak256(&bytes);
        for j in 0..self.nodes.len() {
            if j == from || Some(j) == skip || !self.seen[j].insert(hash) {
                continue;
            }
            self.tokens += 1;
            self.received
                .insert((j, self.tokens), (from, bytes.clone()));
            let message = MessageRef { token: self.tokens };
            self.inbox.push_back((
                j,
                Event::Gossip {
                    message,
                    bytes: bytes.clone(),
                },
            ));
        }
    }
}
