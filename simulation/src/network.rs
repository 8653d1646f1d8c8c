//! The gossip network: each node keeps a mesh of about `degree` peers and forwards what its node
//! accepts, with deduplication by content hash, as gossipsub does. Latency, loss, duplication and
//! reordering come from the seed; partitions cut links; peers that send invalid messages are
//! scored as production's gossipsub scores them (`protocol::gossip`): pruned from the mesh, left
//! out of publications, graylisted, and forgiven as the penalty decays.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use protocol::Verdict;
use protocol::gossip::{GRAYLIST_THRESHOLD, PRUNE_BACKOFF_MS, PUBLISH_THRESHOLD, Penalty};

use crate::agenda::Agenda;
use crate::dice::Dice;
use crate::hashed::HashedMap;
use crate::scenario::Network as Settings;

/// One message on the wire, with the duplicate caches' record of its id (the hash of its bytes).
#[derive(Debug)]
pub struct Packet {
    pub bytes: Vec<u8>,
    seen: Rc<SeenBy>,
}

/// Which nodes' duplicate caches hold one message id, and which nodes have a copy of it on the
/// way. Kept by id, not by node, because a message's spread asks about one id at every node in
/// turn: the answers sit side by side instead of in a cache per node.
struct SeenBy {
    by_node: Box<[Cell<Mark>]>,
}

/// What one message id is at one node.
#[derive(Clone, Copy, Default)]
struct Mark {
    /// The generation of the node's cache the id went into (0: never).
    generation: u32,
    /// When a copy on its way to the node arrives: the earliest of those queued since the last
    /// one arrived (0, or a time past: none known).
    first_due: u32,
}

impl std::fmt::Debug for SeenBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeenBy")
    }
}

/// A copy on its way to a node, in the agenda's calendar of arrivals: ordered by receiver, then
/// token (a millisecond's arrivals at one node in the order they were sent).
#[derive(Debug)]
pub struct Arrival {
    pub to: usize,
    /// The copy's token, for the verdict: unique in the run.
    pub token: u64,
    pub from: usize,
    /// The receiver's `sessions` count when it was sent: a copy on its way to a process that
    /// has stopped since is lost with it.
    session: u32,
    pub packet: Rc<Packet>,
}

impl Arrival {
    fn key(&self) -> (usize, u64) {
        (self.to, self.token)
    }
}

impl PartialEq for Arrival {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Arrival {}
impl PartialOrd for Arrival {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Arrival {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// What one node knows of its peers' conduct.
#[derive(Default)]
struct Peer {
    /// This node's invalid-message penalty of each peer that sent it one.
    penalties: BTreeMap<usize, Penalty>,
    /// Peers pruned from this node's mesh, and until when at least (the backoff).
    pruned_until: BTreeMap<usize, u64>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Traffic {
    pub messages: u64,
    pub bytes: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub cut_by_partition: u64,
    pub pruned_links: u64,
    /// Publications the publisher's own duplicate cache refused (the same bytes, too soon).
    pub refused_duplicates: u64,
}

pub struct Fabric {
    settings: Settings,
    dice: Dice,
    mesh: Mesh,
    peers: Vec<Peer>,
    /// Delivered copies awaiting their receiver's verdict: (token, receiver, sender, packet). A
    /// node judges each copy as it is fed, so this rarely holds more than one.
    awaiting_verdict: Vec<(u64, usize, usize, Rc<Packet>)>,
    /// Each node's duplicate cache, in two generations rotated every half `seen_for_ms`: an id
    /// marked in generation g is remembered while the node's generation is g or g + 1, so for
    /// between half and all of `seen_for_ms`.
    generation: Vec<u32>,
    seen_rotated_at: Vec<u64>,
    /// Every message id a node may still remember, and which nodes do.
    seen_by: HashedMap<u64, Rc<SeenBy>>,
    /// When ids nobody remembers are next dropped from `seen_by`.
    next_sweep_at: u64,
    up: Vec<bool>,
    /// How often each node's process started or stopped.
    sessions: Vec<u32>,
    /// Counts every change of which links are open (a process starting or stopping, a partition,
    /// a heal): while it stays, every node's count of reachable peers does too.
    pub links_changed: u64,
    /// Whether each node holds a penalty or a prune backoff of any peer (its `Peer` is not
    /// empty): most never do, and a send asks about both ends' without touching their state then.
    judges_peers: Vec<bool>,
    /// Partition side of each node (0 or 1) and whether only 1 → 0 is cut.
    side: Vec<u8>,
    partitioned: bool,
    one_way: bool,
    spike: Option<(u64, u64)>,
    sequence: u64,
    pub traffic: Traffic,
    /// Per node, messages and bytes it sent.
    pub sent_by: Vec<(u64, u64)>,
    /// By name: static, so that counting allocates nothing.
    pub rejected: BTreeMap<&'static str, u64>,
    pub ignored: BTreeMap<&'static str, u64>,
    /// Which nodes are honest, and each time one penalised another: (when, node, sender, why).
    honest: Vec<bool>,
    pub honest_penalised: Vec<(u64, usize, usize, &'static str)>,
}

impl Fabric {
    pub fn new(seed: u64, settings: Settings, honest: Vec<bool>) -> Fabric {
        // A woken node takes its copies while no other node's come first in the agenda: a copy
        // sent now and arriving now could come first and leave the rest for a second wake.
        assert!(
            settings.latency_ms.0 >= 1,
            "a copy takes at least a millisecond to arrive"
        );
        let nodes = honest.len();
        let mut dice = Dice::new(seed, "mesh", 0);
        // A ring keeps the mesh connected; random chords bring the degree to about D.
        let mut links: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes];
        for i in 0..nodes {
            let j = (i + 1) % nodes;
            if i != j {
                links[i].insert(j);
                links[j].insert(i);
            }
        }
        let chords = settings.degree.saturating_sub(2) / 2;
        for i in 0..nodes {
            for _ in 0..chords {
                let j = dice.below(nodes);
                if j != i {
                    links[i].insert(j);
                    links[j].insert(i);
                }
            }
        }
        Fabric {
            mesh: Mesh::new(&links),
            peers: (0..nodes).map(|_| Peer::default()).collect(),
            awaiting_verdict: Vec::new(),
            generation: vec![1; nodes],
            seen_rotated_at: vec![0; nodes],
            seen_by: HashedMap::default(),
            next_sweep_at: 0,
            up: vec![false; nodes],
            sessions: vec![0; nodes],
            links_changed: 0,
            judges_peers: vec![false; nodes],
            side: vec![0; nodes],
            partitioned: false,
            one_way: false,
            spike: None,
            sequence: 0,
            traffic: Traffic::default(),
            sent_by: vec![(0, 0); nodes],
            rejected: BTreeMap::new(),
            ignored: BTreeMap::new(),
            honest,
            honest_penalised: Vec::new(),
            dice: Dice::new(seed, "network", 0),
            settings,
        }
    }

    /// Mesh peers a node can currently exchange messages with.
    pub fn reachable_peers(&self, node: usize) -> usize {
        self.mesh
            .of(node)
            .filter(|&p| self.up[p] && self.link_open(node, p) && self.link_open(p, node))
            .count()
    }

    /// A node's process starts or stops. Its mesh peers see the connection open or close at once,
    /// as production's swarm reports it: they are woken to count their peers again.
    pub fn set_up(&mut self, agenda: &mut Agenda, now: u64, node: usize, up: bool) {
        self.up[node] = up;
        self.links_changed += 1;
        // Volatile state goes with the process: what was on its way to it is lost, and two
        // generations on, nothing is remembered.
        self.sessions[node] += 1;
        self.peers[node] = Peer::default();
        self.judges_peers[node] = false;
        self.awaiting_verdict.retain(|&(_, to, ..)| to != node);
        for seen in self.seen_by.values() {
            let mark = &seen.by_node[node];
            mark.set(Mark {
                first_due: 0,
                ..mark.get()
            });
        }
        self.generation[node] += 2;
        self.seen_rotated_at[node] = 0;
        (self.mesh.of(node)).for_each(|peer| agenda.wake(peer, now));
    }

    pub fn partition(
        &mut self,
        agenda: &mut Agenda,
        now: u64,
        side: &BTreeSet<usize>,
        one_way: bool,
    ) {
        self.side.iter_mut().for_each(|s| *s = 0);
        side.iter().for_each(|&n| self.side[n] = 1);
        self.partitioned = true;
        self.links_changed += 1;
        self.one_way = one_way;
        self.wake_all(agenda, now);
    }

    pub fn heal(&mut self, agenda: &mut Agenda, now: u64) {
        self.partitioned = false;
        self.links_changed += 1;
        self.wake_all(agenda, now);
    }

    /// Links opened or closed anywhere: every node counts its peers again.
    fn wake_all(&self, agenda: &mut Agenda, now: u64) {
        (0..self.up.len()).for_each(|node| agenda.wake(node, now));
    }

    pub fn delay_spike(&mut self, until: u64, extra_ms: u64) {
        self.spike = Some((until, extra_ms));
    }

    fn link_open(&self, from: usize, to: usize) -> bool {
        if !self.partitioned || self.side[from] == self.side[to] {
            return true;
        }
        self.one_way && self.side[from] == 0
    }

    /// A node publishes its own message: to every mesh peer, unless its duplicate cache still
    /// holds the same bytes. gossipsub refuses those, and its publish asks the cache without first
    /// clearing what expired (only an insert does, of any message published or received): a node
    /// that took in nothing since still holds the id past its time, so the cache is asked as it
    /// was at the node's last insert. (Every send is new bytes: its nonce differs.)
    pub fn publish(&mut self, agenda: &mut Agenda, now: u64, from: usize, bytes: Vec<u8>) {
        let packet = self.packet(now, bytes);
        if remembers(
            packet.seen.by_node[from].get().generation,
            self.generation[from],
        ) {
            self.traffic.refused_duplicates += 1;
            return;
        }
        self.mark_seen(now, from, &packet);
        self.send_to_mesh(agenda, now, from, None, &packet);
    }

    /// A packet of `bytes`, sharing the duplicate caches' record of its id with every other packet
    /// of the same id. Now and then, ids no node remembers and no packet carries are forgotten.
    fn packet(&mut self, now: u64, bytes: Vec<u8>) -> Rc<Packet> {
        if now >= self.next_sweep_at {
            self.next_sweep_at = now + self.settings.seen_for_ms;
            let generation = &self.generation;
            self.seen_by.retain(|_, seen| {
                Rc::strong_count(seen) > 1
                    || (seen.by_node.iter().zip(generation))
                        .any(|(mark, &now)| remembers(mark.get().generation, now))
            });
        }
        let nodes = self.generation.len();
        let seen = self.seen_by.entry(content_hash(&bytes)).or_insert_with(|| {
            Rc::new(SeenBy {
                by_node: vec![Cell::new(Mark::default()); nodes].into(),
            })
        });
        let seen = seen.clone();
        Rc::new(Packet { bytes, seen })
    }

    /// The node's verdict on a delivered copy: forward it, drop it, or drop it and penalise.
    pub fn verdict(
        &mut self,
        agenda: &mut Agenda,
        now: u64,
        node: usize,
        token: u64,
        verdict: Verdict,
    ) {
        let awaiting = &mut self.awaiting_verdict;
        let Some(i) = awaiting.iter().position(|&(t, ..)| t == token) else {
            return;
        };
        let (_, to, from, packet) = awaiting.swap_remove(i);
        debug_assert_eq!(to, node, "a verdict from the copy's receiver");
        match verdict {
            Verdict::Accept => self.send_to_mesh(agenda, now, node, Some(from), &packet),
            Verdict::Ignore(why) => *self.ignored.entry(why.name()).or_default() += 1,
            Verdict::Reject(why) => {
                *self.rejected.entry(why.name()).or_default() += 1;
                if self.honest[node] && self.honest[from] {
                    self.honest_penalised.push((now, node, from, why.name()));
                }
                let was_in_mesh = self.in_mesh(now, node, from);
                self.judges_peers[node] = true;
                let penalty = self.peers[node].penalties.entry(from).or_default();
                penalty.record(now);
                if was_in_mesh && penalty.score(now) < 0.0 {
                    // A PRUNE: both ends drop the link from their mesh for the backoff.
                    self.traffic.pruned_links += 1;
                    let until = now + PRUNE_BACKOFF_MS;
                    self.peers[node].pruned_until.insert(from, until);
                    self.peers[from].pruned_until.insert(node, until);
                    self.judges_peers[from] = true;
                }
            }
        }
    }

    /// `node`'s score of `peer` at `now`.
    fn score(&self, now: u64, node: usize, peer: usize) -> f64 {
        if !self.judges_peers[node] {
            return 0.0;
        }
        self.peers[node]
            .penalties
            .get(&peer)
            .map_or(0.0, |penalty| penalty.score(now))
    }

    /// Whether `node` forwards to `peer`: not within a prune's backoff, and not scored below 0.
    fn in_mesh(&self, now: u64, node: usize, peer: usize) -> bool {
        if !self.judges_peers[node] {
            return true;
        }
        self.peers[node]
            .pruned_until
            .get(&peer)
            .is_none_or(|&until| until <= now)
            && self.score(now, node, peer) >= 0.0
    }

    /// Forwards a message to the mesh; a node's own message goes to every peer not scored below
    /// the publish threshold (gossipsub's flood publishing).
    fn send_to_mesh(
        &mut self,
        agenda: &mut Agenda,
        now: u64,
        from: usize,
        except: Option<usize>,
        packet: &Rc<Packet>,
    ) {
        for k in self.mesh.places(from) {
            let to = self.mesh.peer_at(k);
            let chosen = match except {
                None => self.score(now, from, to) >= PUBLISH_THRESHOLD,
                Some(source) => to != source && self.in_mesh(now, from, to),
            };
            if chosen {
                self.send(agenda, now, from, to, packet);
            }
        }
    }

    fn send(&mut self, agenda: &mut Agenda, now: u64, from: usize, to: usize, packet: &Rc<Packet>) {
        self.traffic.messages += 1;
        self.traffic.bytes += packet.bytes.len() as u64;
        let sent = &mut self.sent_by[from];
        sent.0 += 1;
        sent.1 += packet.bytes.len() as u64;
        if !self.link_open(from, to) {
            self.traffic.cut_by_partition += 1;
            return;
        }
        if self.dice.chance(self.settings.loss) {
            self.traffic.lost += 1;
            return;
        }
        // A copy the receiver has already seen, or from a peer it graylists, would be dropped on
        // arrival: skip the work.
        if !self.up[to] || self.score(now, to, from) < GRAYLIST_THRESHOLD {
            return;
        }
        if self.has_seen(now, to, packet) {
            // Its arrival would still be an insert, which clears what expired.
            self.rotate_seen(now, to);
            return;
        }
        let copies = if self.dice.chance(self.settings.duplication) {
            self.traffic.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.settings.latency_ms;
            let mut at = now + self.dice.range(lo, hi);
            if let Some((until, extra)) = self.spike
                && now < until
            {
                at += self.dice.range(0, extra);
            }
            self.sequence += 1;
            if self.arrives_after_another_copy(now, to, packet, at) {
                continue;
            }
            let arrival = Arrival {
                to,
                token: self.sequence,
                from,
                session: self.sessions[to],
                packet: packet.clone(),
            };
            agenda.deliver(at, arrival);
        }
    }

    /// Whether a copy reaching `to` at `at` would find the id already in its cache, as a copy
    /// still on its way arrives no later, in the same generation of the cache: then its arrival
    /// would change nothing, the earlier one having turned the cache to that generation, and it
    /// is not queued nor its receiver woken. Otherwise this copy is noted as on its way, if it
    /// arrives first. A node that stops loses what was on its way (`set_up`).
    fn arrives_after_another_copy(&self, now: u64, to: usize, packet: &Packet, at: u64) -> bool {
        let mark = &packet.seen.by_node[to];
        let first = u64::from(mark.get().first_due);
        let window = self.cache_turn_ms();
        if first >= now.max(1) && first <= at && first / window == at / window {
            return true;
        }
        // Past 49 days (a u32 of milliseconds) copies are not noted: noting only saves work.
        if (first < now || at < first)
            && let Ok(first_due) = u32::try_from(at)
        {
            mark.set(Mark {
                first_due,
                ..mark.get()
            });
        }
        false
    }

    /// How often a duplicate cache turns a generation: at every multiple of this (`set_up` starts
    /// a node's cache at 0, and it turns only by whole periods).
    fn cache_turn_ms(&self) -> u64 {
        (self.settings.seen_for_ms / 2).max(1)
    }

    /// The next copy arriving at `node` at `now` that the node has not seen, registered for its
    /// verdict.
    pub fn take_arrival(&mut self, agenda: &mut Agenda, now: u64, node: usize) -> Option<Arrival> {
        loop {
            let arrival = agenda.arrival(now, node)?;
            if arrival.session != self.sessions[node] {
                continue;
            }
            if self.has_seen(now, node, &arrival.packet) {
                self.rotate_seen(now, node);
                continue;
            }
            self.mark_seen(now, node, &arrival.packet);
            let awaiting = (arrival.token, node, arrival.from, arrival.packet.clone());
            self.awaiting_verdict.push(awaiting);
            return Some(arrival);
        }
    }

    fn has_seen(&self, now: u64, node: usize, packet: &Packet) -> bool {
        let (generation, _) = self.generation_at(now, node);
        remembers(packet.seen.by_node[node].get().generation, generation)
    }

    /// `node`'s cache generation at `now`, and when it began. The cache turns every half of
    /// `seen_for_ms` whether or not the node touches it, so an id is remembered for half of that
    /// at least and all of it at most, however quiet the node was since.
    fn generation_at(&self, now: u64, node: usize) -> (u32, u64) {
        let half = self.cache_turn_ms();
        let turns = now.saturating_sub(self.seen_rotated_at[node]) / half;
        let began = self.seen_rotated_at[node] + turns * half;
        (self.generation[node] + turns.min(2) as u32, began)
    }

    fn rotate_seen(&mut self, now: u64, node: usize) {
        (self.generation[node], self.seen_rotated_at[node]) = self.generation_at(now, node);
    }

    fn mark_seen(&mut self, now: u64, node: usize, packet: &Packet) {
        self.rotate_seen(now, node);
        let mark = &packet.seen.by_node[node];
        mark.set(Mark {
            generation: self.generation[node],
            ..mark.get()
        });
    }
}

/// Each node's mesh peers, in one array: a send reads one node's few peers, which lie beside the
/// next node's instead of behind a pointer of their own.
struct Mesh {
    /// Node `n`'s peers are `peers[starts[n]..starts[n + 1]]`, in order.
    starts: Vec<u32>,
    peers: Vec<u32>,
}

impl Mesh {
    fn new(links: &[BTreeSet<usize>]) -> Mesh {
        let index = |n: usize| u32::try_from(n).expect("fewer than 2^32 nodes and links");
        let mut starts = vec![0];
        let mut peers = Vec::new();
        for node_links in links {
            peers.extend(node_links.iter().map(|&peer| index(peer)));
            starts.push(index(peers.len()));
        }
        Mesh { starts, peers }
    }

    /// Where `node`'s peers are in `peers`.
    fn places(&self, node: usize) -> std::ops::Range<usize> {
        self.starts[node] as usize..self.starts[node + 1] as usize
    }

    fn peer_at(&self, place: usize) -> usize {
        self.peers[place] as usize
    }

    fn of(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.places(node).map(|place| self.peer_at(place))
    }
}

/// Whether a cache now in generation `now` still holds an id marked in generation `marked`.
fn remembers(marked: u32, now: u32) -> bool {
    marked != 0 && marked + 1 >= now
}

/// The message id production's gossipsub computes (`protocol::message_id`), its first 8 bytes as
/// the duplicate caches' key.
fn content_hash(bytes: &[u8]) -> u64 {
    let id = protocol::message_id(bytes);
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes"))
}
