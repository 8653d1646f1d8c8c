//! The node: one per oracle participant. `handle(now, event)`, then `poll_action()` until `None`,
//! and `poll_timeout()` for the next deadline.

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::book::{Book, Entry, Phase};
use crate::committee::Committee;
use crate::config::{Config, ConfigError, Signers};
use std::sync::Arc;

use crate::crypto::{Address, Recover, Signature, SignatureCheck};
use crate::election;
use crate::io::{Action, Broadcast, Event, HeartbeatRow, PriceRow, Refusal, Report, WriteOutcome};
use crate::metrics::{Counters, Ignored};
use crate::price::{Price, PriceBody, PriceId};
use crate::timers::{Timer, Timers};
use crate::wire::Message;

/// Members the committee ring learns at most in an open network (an allowlist sets its own size).
pub(crate) const MAX_OPEN_MEMBERS: usize = 10_000;

/// What a node holds in memory, in entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Prices collecting signatures or waiting to be stored.
    pub prices: usize,
    /// Ids remembered as stored, while a copy could still be accepted.
    pub stored_ids: usize,
    pub timers: usize,
}

/// One oracle participant's state machine.
///
/// The contract: after every [`Node::handle`], call [`Node::poll_action`] until it returns `None`
/// before handling anything else (answers that exist at once, like signatures, are handled after
/// the drain, never during it); call `handle` with [`Event::TimerDue`] once [`Node::poll_timeout`]'s
/// deadline has passed. [`Node::drive`] does all of this and is what both drivers call.
///
/// Laid out in the order written, the fields every message reads first, on a line boundary: a
/// driver of thousands wakes each node among the others, and every line of it read is a miss.
#[repr(C, align(64))]
pub struct Node {
    pub(crate) now: u64,
    /// Shared: a driver running many nodes of one deployment keeps one copy, read by all.
    pub(crate) config: Arc<Config>,
    pub(crate) check: Arc<dyn SignatureCheck>,
    /// The allowlist's ring, shared; in an open network, this node's own, growing.
    pub(crate) committee: Arc<Committee>,
    pub(crate) me: Address,
    pub(crate) network_id: [u8; 32],
    pub(crate) actions: VecDeque<Action>,
    pub(crate) book: Book,
    pub(crate) counters: Counters,
    pub(crate) timers: Timers,
    /// This node's latest observation and when it was made.
    pub(crate) reference: Option<(Price, u64)>,
    /// The price of this node's latest publication, against which a move is measured.
    pub(crate) last_published: Option<Price>,
    pub(crate) fetch_in_flight: bool,
    pub(crate) publish_pending: bool,
    pub(crate) sequence: u16,
    /// The seed's stream, after the sequence's start: each broadcast's nonce. Boxed, as it is
    /// large and used only to send.
    pub(crate) rng: Box<ChaCha8Rng>,
    pub(crate) peers: usize,
    /// This node's place in the writers' order (0 writes, then the backups) and until when it
    /// holds it, unless a database read says otherwise first.
    pub(crate) lease: Option<Lease>,
}

/// The key of the node's hash tables, from its seed: unknown to anyone else, so that nobody can
/// choose ids that collide in them, and the same in every run of the seed. Hashed, so that the
/// tables reveal nothing of the nonce stream's key.
pub(crate) fn table_key(rng: &ChaCha8Rng) -> u64 {
    let mut bytes = b"book table key".to_vec();
    bytes.extend_from_slice(&rng.get_seed());
    let hash = crate::crypto::keccak256(&bytes);
    u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// A place in the order of writers, held until a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub rank: usize,
    pub until: u64,
}

impl Node {
    /// A node for `config`, signing as `me`. `seed` is the only randomness it will ever use; `now`
    /// is unix milliseconds. Errors name the setting to fix.
    pub fn new(
        config: impl Into<Arc<Config>>,
        me: Address,
        seed: u64,
        now: u64,
    ) -> Result<Node, ConfigError> {
        Node::checked_by(config, me, seed, now, Arc::new(Recover))
    }

    /// [`Node::new`], checking signatures with `check` from the start, as
    /// [`Node::with_signature_check`] would replace it.
    #[cfg(feature = "simulation")]
    pub fn new_with_signature_check(
        config: impl Into<Arc<Config>>,
        me: Address,
        seed: u64,
        now: u64,
        check: Arc<dyn SignatureCheck>,
    ) -> Result<Node, ConfigError> {
        Node::checked_by(config, me, seed, now, check)
    }

    fn checked_by(
        config: impl Into<Arc<Config>>,
        me: Address,
        seed: u64,
        now: u64,
        check: Arc<dyn SignatureCheck>,
    ) -> Result<Node, ConfigError> {
        let config = config.into();
        config.validate()?;
        let mut rng = Box::new(ChaCha8Rng::seed_from_u64(seed));
        let key = table_key(&rng);
        let committee = match &config.signers {
            Signers::Allowlist(list) if !list.contains(&me) => {
                return Err(ConfigError::NotAllowlisted(me));
            }
            Signers::Allowlist(list) => list.ring(),
            Signers::Open => Arc::new(Committee::new(key, [me])),
        };
        let mut node = Node {
            book: Book::new(key),
            network_id: config.network_id_by(&*check),
            me,
            check,
            sequence: rng.next_u32() as u16,
            now,
            actions: VecDeque::new(),
            timers: Timers::default(),
            committee,
            reference: None,
            last_published: None,
            fetch_in_flight: false,
            publish_pending: false,
            peers: 0,
            lease: None,
            counters: Counters::default(),
            rng,
            config,
        };
        let first = node.next_publication(now);
        node.timers.set(&mut node.book, Timer::Observe, first);
        node.timers.set(&mut node.book, Timer::Heartbeat, now);
        if node.watches() {
            let watch = now + node.config.observe_interval_ms;
            node.timers.set(&mut node.book, Timer::Watch, watch);
        }
        Ok(node)
    }

    /// Replaces how signatures are checked (by default, [`Recover`]): for a driver running many
    /// nodes in one process (a shared memo of recoveries), and for tests. Behind the `simulation`
    /// feature, so that the production node cannot switch verification off.
    #[cfg(feature = "simulation")]
    pub fn with_signature_check(mut self, check: Arc<dyn SignatureCheck>) -> Node {
        self.check = check;
        self
    }

    /// Feeds one event at `now` (unix ms; a time earlier than one already seen counts as that
    /// one). Every action it causes must be drained with [`Node::poll_action`] before the next.
    pub fn handle(&mut self, now: u64, event: Event) {
        debug_assert!(
            self.actions.is_empty(),
            "handle() while {} actions are not drained",
            self.actions.len()
        );
        self.now = self.now.max(now);
        match event {
            Event::TimerDue => {
                while let Some(timer) = self.timers.pop_due(&mut self.book, self.now) {
                    self.on_timer(timer);
                }
            }
            Event::PricesFetched { answered } => self.on_prices(answered),
            Event::Gossip { message, bytes } => {
                // The verdict goes out first, before what the message caused.
                let mark = self.actions.len();
                let verdict = self.receive(&bytes);
                self.counters.count(verdict);
                self.actions
                    .insert(mark, Action::Verdict { message, verdict });
            }
            Event::Signed { id, signature } => self.on_signed(id, signature),
            Event::DatabaseRead { heartbeats, stored } => self.on_database(&heartbeats, &stored),
            Event::DatabaseUnreachable => self.set_lease(None),
            Event::WriteFinished { id, outcome } => self.on_write_finished(id, outcome),
            Event::PeersChanged { count } => self.on_peers(count),
        }
    }

    /// The next action to carry out, in order; `None` once drained.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() {
            // Drained, the queue's room goes back to the allocator: the room it gives the next
            // wake is what another node just gave back, in the cache, where this node's own
            // would have gone cold by then (a driver wakes thousands in turn).
            self.actions = VecDeque::new();
        }
        action
    }

    /// The next deadline and the timer behind it.
    pub fn poll_timeout(&self) -> Option<(u64, Timer)> {
        self.timers.next()
    }

    pub fn address(&self) -> Address {
        self.me
    }

    pub fn network_id(&self) -> [u8; 32] {
        self.network_id
    }

    /// The latest time the node was fed.
    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// This node is the term's writer (not one of its backups).
    pub fn is_writer(&self) -> bool {
        self.writing_rank() == Some(0)
    }

    /// This node's place in the order of writers, while its lease holds.
    fn writing_rank(&self) -> Option<usize> {
        self.lease
            .filter(|lease| self.now < lease.until)
            .map(|lease| lease.rank)
    }

    /// What the node holds in memory.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            prices: self.book.len(),
            stored_ids: self.book.stored_len(),
            timers: self.timers.len(),
        }
    }

    /// The bookkeeping's invariants ([`Book::check`]), or the first one broken.
    #[cfg(feature = "arbitrary")]
    pub(crate) fn check_book(&self) -> Result<(), String> {
        self.book.check(&self.timers, &self.config)
    }

    /// The first moment from `from` on at this node's phase of the price interval.
    fn next_publication(&self, from: u64) -> u64 {
        self.next_at_phase(from, self.config.price_interval_ms, 12)
    }

    /// The first moment from `from` on at this node's phase of `interval`, which the 8 bytes of
    /// the address from `byte` on set. So the network's publications and database reads spread
    /// evenly over their intervals however its nodes were started (all at once, say, after an
    /// outage), and a restart keeps them; each uses other bytes, so that a node's own publication
    /// and read do not always fall due together when one interval divides the other.
    fn next_at_phase(&self, from: u64, interval: u64, byte: usize) -> u64 {
        let bytes: [u8; 8] = self.me.0[byte..byte + 8].try_into().expect("8 bytes");
        let phase = u64::from_be_bytes(bytes) % interval;
        let at = from - from % interval + phase;
        if at < from { at + interval } else { at }
    }

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(crate) fn report(&mut self, report: Report) {
        self.push(Action::Report(report));
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Observe => {
                let next = self.next_publication(self.now + 1);
                self.timers.set(&mut self.book, Timer::Observe, next);
                self.publish_pending = true;
                self.request_fetch();
            }
            Timer::Watch => {
                if self.watches() {
                    let next = self.now + self.config.observe_interval_ms;
                    self.timers.set(&mut self.book, Timer::Watch, next);
                }
                self.request_fetch();
            }
            Timer::Heartbeat => self.on_heartbeat_timer(),
            Timer::CoSign(id) => self.consider_cosign(id),
            Timer::Write(id) => self.on_write_timer(id),
            Timer::Retransmit(id) => self.retransmit(id),
            Timer::Expire(id) => self.expire(id),
        }
    }

    fn request_fetch(&mut self) {
        if !self.fetch_in_flight {
            self.fetch_in_flight = true;
            self.push(Action::FetchPrices);
        }
    }

    fn on_prices(&mut self, answered: Vec<Price>) {
        self.fetch_in_flight = false;
        let sources = answered.len();
        let observed = (sources >= self.config.min_sources)
            .then(|| Price::median(answered))
            .flatten();
        match observed {
            Some(price) => {
                self.reference = Some((price, self.now));
                self.report(Report::Observed { price, sources });
            }
            None => {
                self.counters.sources_insufficient += 1;
                let needed = self.config.min_sources;
                self.report(Report::SourcesInsufficient {
                    answered: sources,
                    needed,
                });
            }
        }
        if std::mem::take(&mut self.publish_pending) {
            match observed {
                Some(price) if self.peers >= self.config.min_peers => self.publish(price),
                Some(_) => {
                    self.counters.publications_skipped += 1;
                    let (peers, needed) = (self.peers, self.config.min_peers);
                    self.report(Report::WaitingForPeers { peers, needed });
                }
                None => self.counters.publications_skipped += 1,
            }
        } else if let Some(price) = observed
            && self.peers >= self.config.min_peers
            && self.moved_since_published(price)
        {
            self.counters.published_on_deviation += 1;
            self.publish(price);
        }
        // Short of sources, prices awaiting an observation keep waiting: the next fetch, one
        // observe interval on at the latest, decides them, or they expire. Without the watch's
        // (deviation_bps 0) that fetch is set here.
        if observed.is_some() {
            for id in self.book.take_awaiting_reference() {
                self.consider_cosign(id);
            }
        } else if !self.watches() && !self.book.awaiting_reference().is_empty() {
            let at = self.now + self.config.observe_interval_ms;
            self.timers.set(&mut self.book, Timer::Watch, at);
        }
    }

    /// The watch observes every observe interval only to publish on a move of `deviation_bps`.
    fn watches(&self) -> bool {
        self.config.deviation_bps > 0
    }

    /// The observation is `deviation_bps` or more from this node's last publication (none yet:
    /// the interval publishes first).
    fn moved_since_published(&self, price: Price) -> bool {
        let bps = u128::from(self.config.deviation_bps);
        bps > 0
            && self.last_published.is_some_and(|last| {
                price.0.abs_diff(last.0).saturating_mul(10_000) >= last.0.saturating_mul(bps)
            })
    }

    fn publish(&mut self, price: Price) {
        self.sequence = self.sequence.wrapping_add(1);
        let body = PriceBody {
            id: PriceId::mint(self.now, self.sequence, self.me),
            feed: self.config.feed,
            price,
            decimals: self.config.decimals,
            observed_at_ms: self.now,
        };
        let digest = body.digest_by(&self.network_id, &*self.check);
        if self.admit(body, digest, self.me).is_err() {
            self.counters.publications_skipped += 1;
            return;
        }
        self.counters.published += 1;
        self.last_published = Some(price);
        self.book.get_mut(body.id).expect("just admitted").decided = true;
        self.report(Report::Published { id: body.id, price });
        self.push(Action::Sign {
            id: body.id,
            digest,
        });
    }

    /// Creates the entry for a new price, within the per-origin and total bounds; the error says
    /// which bound refused it.
    pub(crate) fn admit(
        &mut self,
        body: PriceBody,
        digest: [u8; 32],
        origin: Address,
    ) -> Result<(), Ignored> {
        if self.book.collecting(origin) >= self.config.max_pending_per_origin {
            return Err(Ignored::OriginLimit);
        }
        if self.book.len() >= self.config.max_prices {
            return Err(Ignored::Full);
        }
        self.book.insert(Entry::new(body, digest, origin, self.now));
        let unready_until = self.unready_until(body.observed_at_ms);
        let expire_at = unready_until.max(self.now);
        self.timers
            .set(&mut self.book, Timer::Expire(body.id), expire_at);
        Ok(())
    }

    /// When a price observed at `observed_at` is dropped if it has not reached quorum (its
    /// `Timer::Expire`, unless admitted later than that).
    pub(crate) fn unready_until(&self, observed_at: u64) -> u64 {
        observed_at + self.config.max_age_ms + self.config.max_skew_ms
    }

    /// Decides whether to co-sign: the price must still be fresh and close to this node's own
    /// observation, which must itself be recent (if not, observe first and decide then).
    pub(crate) fn consider_cosign(&mut self, id: PriceId) {
        let Some(entry) = self.book.get(id) else {
            return;
        };
        if entry.decided || entry.reached_quorum() {
            return;
        }
        let (body, digest) = (entry.body, entry.digest);
        if self.now > body.observed_at_ms + self.config.max_age_ms {
            return self.refuse(id, Refusal::Stale);
        }
        let reference = self
            .reference
            .filter(|&(_, at)| self.now <= at + self.config.reference_max_age_ms);
        let Some((reference, _)) = reference else {
            self.book.await_reference(id);
            return self.request_fetch();
        };
        if !body
            .price
            .within_bps(reference, self.config.max_deviation_bps)
        {
            return self.refuse(id, Refusal::OutOfBand);
        }
        self.book.get_mut(id).expect("checked above").decided = true;
        self.push(Action::Sign { id, digest });
    }

    fn refuse(&mut self, id: PriceId, why: Refusal) {
        if let Some(entry) = self.book.get_mut(id) {
            entry.decided = true;
            self.counters.refused += 1;
            self.report(Report::Refused { id, why });
        }
    }

    fn on_signed(&mut self, id: PriceId, signature: Signature) {
        let Some(entry) = self.book.get(id) else {
            return;
        };
        if !self.check.is_by(&signature, &entry.digest, self.me) {
            self.counters.own_signature_faults += 1;
            return self.report(Report::OwnSignatureFault { id });
        }
        let why = if entry.origin == self.me {
            Broadcast::Publish
        } else {
            self.counters.cosigned += 1;
            let origin = entry.origin;
            self.report(Report::CoSigned { id, origin });
            Broadcast::CoSign
        };
        self.add_signatures(id, [(self.me, signature)]);
        self.broadcast(id, why);
        // Still short of quorum: if the pieces never meet (lost, or at nodes that are not its
        // signers), what this node holds goes out again.
        if self.book.get(id).is_some_and(|e| !e.reached_quorum()) {
            let at = self.now + self.config.retransmit_after_ms;
            self.timers.set(&mut self.book, Timer::Retransmit(id), at);
        }
    }

    /// Merges verified signatures; returns how many were new. Moves the price to ready at quorum.
    pub(crate) fn add_signatures(
        &mut self,
        id: PriceId,
        signatures: impl IntoIterator<Item = (Address, Signature)>,
    ) -> usize {
        let Some(entry) = self.book.get_mut(id) else {
            return 0;
        };
        let mut added = 0;
        for (signer, signature) in signatures {
            if entry.signatures.len() >= crate::wire::MAX_SIGNATURES {
                break;
            }
            if entry.signatures.insert(signer, signature).is_none() {
                added += 1;
            }
        }
        if added == 0 {
            return 0;
        }
        entry.last_signature_at = self.now;
        let write_at = self.now + self.config.write_delay_ms;
        let (count, body, phase) = (entry.signatures.len(), entry.body, entry.phase());
        let signed_by_me = entry.signatures.contains_key(&self.me);
        if phase == Phase::Collecting && count >= self.config.quorum {
            self.book.set_phase(id, Phase::Ready);
            self.timers.cancel(&mut self.book, Timer::CoSign(id));
            self.counters.quorum_reached += 1;
            let after_ms = self.now.saturating_sub(body.observed_at_ms);
            self.report(Report::QuorumReached {
                id,
                signers: count,
                after_ms,
            });
            if signed_by_me {
                let at = write_at + self.config.retransmit_after_ms;
                self.timers.set(&mut self.book, Timer::Retransmit(id), at);
            }
        }
        // Only a node in the order of writers (or with a write in flight) times a write: one that
        // takes a place later sets the timers of every ready price then (`set_lease`).
        let writes = self.writing_rank().is_some() || phase == Phase::Writing;
        if writes && (phase != Phase::Collecting || count >= self.config.quorum) {
            self.timers.set(&mut self.book, Timer::Write(id), write_at);
        }
        added
    }

    pub(crate) fn message(&self, id: PriceId) -> Option<Message> {
        let entry = self.book.get(id)?;
        Message::new(self.network_id, entry.body, entry.signatures.clone())
    }

    pub(crate) fn broadcast(&mut self, id: PriceId, why: Broadcast) {
        if let Some(mut message) = self.message(id) {
            self.counters.broadcasts += 1;
            message.nonce = self.rng.next_u64();
            let bytes = message.encode();
            self.push(Action::Broadcast { id, why, bytes });
        }
    }

    fn on_heartbeat_timer(&mut self) {
        // The first beat is at start; from the second on, at this node's phase.
        let next = self.next_at_phase(self.now + 1, self.config.heartbeat_interval_ms, 4);
        self.timers.set(&mut self.book, Timer::Heartbeat, next);
        self.push(Action::Heartbeat);
        self.push(Action::ReadDatabase {
            stored_since: self.book.oldest_ready(),
        });
        // Stored ids older than any price still accepted are forgotten.
        let horizon = self
            .now
            .saturating_sub(self.config.ready_ttl_ms + self.config.max_skew_ms);
        self.book.forget_stored_before(horizon);
    }

    fn on_database(&mut self, heartbeats: &[HeartbeatRow], stored: &[PriceId]) {
        for &id in stored {
            self.mark_stored(id);
        }
        let term = self.now / self.config.writer_term_ms;
        // The order is this term's: it ends with the term, before the next read (nodes read at
        // phases of their own, and the next term's writer takes over at its first).
        let term_end = (term + 1) * self.config.writer_term_ms;
        let stale = self.config.heartbeat_stale_ms;
        let places = self.config.backup_writers + 1;
        let eligible = |a| self.config.allows(a);
        let key = election::term_key(term, &*self.check);
        let lease = election::rank(heartbeats, stale, key, self.me, eligible, places)
            .and_then(|rank| {
                let mine = |row: &&HeartbeatRow| row.node == self.me && row.age_ms <= stale;
                let row = heartbeats.iter().find(mine)?;
                Some(Lease {
                    rank,
                    until: (self.now + stale - row.age_ms).min(term_end),
                })
            })
            .filter(|lease| self.now < lease.until);
        self.set_lease(lease);
    }

    fn set_lease(&mut self, lease: Option<Lease>) {
        // What was last reported: a lease is held only from when it starts, and one that ran out
        // (at its term's end, say) still counts until the next read replaces it here, so that its
        // end is reported once, and not at all when the node writes the next term too.
        let was = self.lease.is_some_and(|lease| lease.rank == 0);
        let rank_was = self.writing_rank();
        self.lease = lease;
        let is = self.is_writer();
        if was != is {
            self.report(Report::WriterChanged { writer: is });
        }
        // A node taking a place in the order looks at every ready price: it writes those due for
        // its place and sets each other's timer to when it will be; after that, each price's own
        // timer (its due time, or a failed write's backoff) says when.
        if let Some(rank) = self.writing_rank()
            && rank_was != Some(rank)
        {
            let ready: Vec<PriceId> = self
                .book
                .entries()
                .filter(|e| e.phase() == Phase::Ready)
                .map(|e| e.body.id)
                .collect();
            ready.into_iter().for_each(|id| self.write_if_due(id));
        }
    }

    /// `Timer::Write`: a ready price is written if this node is the writer; a write still
    /// unanswered is presumed failed (a database that hangs must not hold a price forever).
    fn on_write_timer(&mut self, id: PriceId) {
        match self.book.get(id).map(Entry::phase) {
            Some(Phase::Writing) => self.write_failed(id),
            Some(Phase::Ready) => self.write_if_due(id),
            _ => {}
        }
    }

    /// Writes a ready price due for this node's place in the order of writers: the writer
    /// `write_delay` after its last new signature, the k-th backup `k × backup_step` later (by then
    /// it would have read it stored, had the writer written it), never before a failed write's
    /// backoff. A price not due yet has its timer set to when it will be.
    fn write_if_due(&mut self, id: PriceId) {
        let Some(rank) = self.writing_rank() else {
            return;
        };
        let Some(entry) = self.book.get_mut(id) else {
            return;
        };
        if entry.phase() != Phase::Ready {
            return;
        }
        let due = (entry.last_signature_at
            + self.config.write_delay_ms
            + rank as u64 * self.config.backup_step_ms)
            .max(entry.retry_at);
        if self.now < due {
            self.timers.set(&mut self.book, Timer::Write(id), due);
            return;
        }
        let (origin, last_signature_at_ms) = (entry.origin, entry.last_signature_at);
        self.book.set_phase(id, Phase::Writing);
        let unanswered = self.now + 2 * self.config.database_timeout_ms;
        self.timers
            .set(&mut self.book, Timer::Write(id), unanswered);
        let message = self.message(id).expect("a ready price has signatures");
        self.counters.writes += 1;
        self.push(Action::Write(Box::new(PriceRow {
            message,
            origin,
            last_signature_at_ms,
            writer: self.me,
        })));
    }

    fn on_write_finished(&mut self, id: PriceId, outcome: WriteOutcome) {
        let Some(entry) = self.book.get_mut(id) else {
            return;
        };
        if entry.phase() != Phase::Writing {
            return;
        }
        match outcome {
            WriteOutcome::Failed => self.write_failed(id),
            WriteOutcome::Inserted | WriteOutcome::AlreadyPresent => {
                if outcome == WriteOutcome::Inserted {
                    self.counters.inserted += 1;
                } else {
                    self.counters.already_present += 1;
                }
                let signers = entry.signatures.len();
                let after_ms = self.now.saturating_sub(entry.body.observed_at_ms);
                self.report(Report::Stored {
                    id,
                    outcome,
                    signers,
                    after_ms,
                });
                self.mark_stored(id);
            }
        }
    }

    /// Back to ready, retried after a doubling backoff.
    fn write_failed(&mut self, id: PriceId) {
        let Some(entry) = self.book.get_mut(id) else {
            return;
        };
        entry.write_failures += 1;
        let backoff = self.config.write_retry_ms << (entry.write_failures - 1).min(5);
        entry.retry_at = self.now + backoff;
        let retry_at = entry.retry_at;
        self.book.set_phase(id, Phase::Ready);
        self.counters.write_failures += 1;
        self.timers.set(&mut self.book, Timer::Write(id), retry_at);
    }

    /// The price is in the database: forget it, remembering only its id.
    fn mark_stored(&mut self, id: PriceId) {
        if self.remove(id).is_some() {
            self.book.insert_stored(id);
        }
    }

    pub(crate) fn remove(&mut self, id: PriceId) -> Option<Box<Entry>> {
        let entry = self.book.remove(id)?;
        self.timers.forget(&self.book, &entry);
        Some(entry)
    }

    /// Sends a price this node signed again: a ready one not seen stored, or one still short of
    /// quorum while it may still be co-signed. At most `max_retransmits` times, doubling the wait.
    fn retransmit(&mut self, id: PriceId) {
        let Some(entry) = self.book.get_mut(id) else {
            return;
        };
        let after = self.config.retransmit_after_ms;
        let (useful, next) = match entry.phase() {
            // Doubling: a ready price waits for its writer for up to its ttl.
            Phase::Ready => (true, after << (entry.retransmits + 1).min(10)),
            // Every period, while a copy can still be co-signed where it arrives: a price short
            // of quorum has only until max age, and each copy lost is one of few chances.
            Phase::Collecting => (
                self.now < entry.body.observed_at_ms + self.config.max_age_ms,
                after,
            ),
            Phase::Writing => (false, 0),
        };
        if !useful || entry.retransmits >= self.config.max_retransmits {
            return;
        }
        entry.retransmits += 1;
        self.timers
            .set(&mut self.book, Timer::Retransmit(id), self.now + next);
        self.counters.retransmits += 1;
        self.broadcast(id, Broadcast::Retransmit);
    }

    fn expire(&mut self, id: PriceId) {
        let Some(entry) = self.book.get(id) else {
            return;
        };
        let ready_until = entry.body.observed_at_ms + self.config.ready_ttl_ms;
        let reached_quorum = entry.reached_quorum();
        if reached_quorum && self.now < ready_until {
            self.timers
                .set(&mut self.book, Timer::Expire(id), ready_until);
            return;
        }
        if reached_quorum {
            self.counters.expired_unstored += 1;
        } else {
            self.counters.expired_without_quorum += 1;
        }
        self.remove(id);
        self.report(Report::Expired { id, reached_quorum });
    }

    fn on_peers(&mut self, count: usize) {
        let needed = self.config.min_peers;
        let (before, after) = (self.peers >= needed, count >= needed);
        self.peers = count;
        match (before, after) {
            (false, true) => self.report(Report::PeersEnough { peers: count }),
            (true, false) => self.report(Report::WaitingForPeers {
                peers: count,
                needed,
            }),
            _ => {}
        }
    }
}
