//! One oracle node: a single task owns the `protocol::Node` and executes its actions; the network,
//! the database and the price sources run beside it and come back as events. No oracle rule lives
//! here: this file moves bytes, time and results.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use protocol::{
    Action, Clock, Config, ConfigError, Event, Keypair, MessageRef, Node, Report, WriteOutcome,
    journal,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::http::{self, Health, Metrics, Reason, SourceLabel};
use crate::network::{self, Behaviour, BehaviourEvent, NetworkError};
use crate::recorder::Recorder;
use crate::sources::Sources;
use crate::store::Store;
use crate::verify;

/// How often a node short of peers dials its bootstrap addresses again.
const REDIAL_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping node waits for its writes in flight.
const DRAIN_WRITES_FOR: Duration = Duration::from_secs(10);

pub struct Settings {
    pub name: String,
    /// Where to serve `/health` and `/metrics`, if anywhere.
    pub http: Option<SocketAddr>,
    pub key: Keypair,
    pub config: Config,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub sources: Sources,
    /// Where the flight recorder keeps its files and how many bytes they may hold; `None`: off.
    pub recording: Option<(PathBuf, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    #[error("cannot serve /health and /metrics: {0}")]
    Http(#[from] std::io::Error),
    #[error(
        "cannot record in {0}: {1} (make the folder writable, or turn the flight recorder off \
         with --recording-limit 0)"
    )]
    Recording(PathBuf, std::io::Error),
    #[error("the operating system gives no randomness for the node's seed: {0}")]
    Randomness(getrandom::Error),
}

/// The wall clock: unix time in milliseconds. The node is fed [`protocol::Clock`]'s time, which
/// follows this deliberately.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the node until `stop` resolves, then lets the writes in flight finish.
pub async fn run(
    settings: Settings,
    store: Arc<Store>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DriverError> {
    let topic = network::topic(&settings.config.network_id());
    let duplicate_cache =
        Duration::from_millis(protocol::gossip::duplicate_cache_ms(&settings.config));
    let swarm = network::start(
        &settings.key,
        &topic,
        duplicate_cache,
        &settings.listen,
        &settings.bootstrap,
    )?;
    // The seed draws every gossip nonce: one a peer could foresee, it could send first and have
    // this node's own retransmission refused as already seen.
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(DriverError::Randomness)?;
    let started = Instant::now();
    let clock = Clock::new(now_ms(), 0);
    let start = journal::Start {
        config: settings.config.clone(),
        me: settings.key.address(),
        seed: u64::from_le_bytes(seed),
        started_at: clock.now(0),
    };
    let node = Node::new(start.config.clone(), start.me, start.seed, start.started_at)?;
    let recorder = match &settings.recording {
        Some((dir, limit)) if *limit > 0 => {
            let recorder = Recorder::create(dir, &settings.name, *limit, start)
                .map_err(|e| DriverError::Recording(dir.clone(), e))?;
            tracing::info!(name = %settings.name, file = %recorder.path().display(), "flight recorder on");
            Some(recorder)
        }
        _ => None,
    };
    let metrics = Metrics::default();
    let health = metrics.health.clone();
    if let Ok(mut health) = health.lock() {
        *health = Health {
            name: settings.name.clone(),
            address: settings.key.address().to_string(),
            min_peers: settings.config.min_peers,
            min_sources: settings.config.min_sources,
            ..Health::default()
        };
    }
    tokio::spawn(probe_sources(
        settings.sources.clone(),
        settings.config.min_sources,
        health.clone(),
    ));
    if let Some(address) = settings.http {
        // A network stores a price about every interval; three without one means it stopped.
        let latest_max_age = Duration::from_millis(3 * settings.config.price_interval_ms);
        let bound = http::serve(address, metrics.clone(), store.clone(), latest_max_age).await?;
        tracing::info!(name = %settings.name, %bound, "serving /health and /metrics");
    }
    let (events, inbox) = mpsc::unbounded_channel();
    let mut driver = Driver {
        node,
        recorder,
        clock,
        started,
        shown_offset_ms: 0,
        private_deployment: network::is_private_deployment(&settings.listen, &settings.bootstrap),
        next_token: 0,
        peers: 0,
        io: NodeIo {
            health,
            metrics,
            swarm,
            topic,
            store,
            events,
            pending: HashMap::new(),
            writes: JoinSet::new(),
            settings,
        },
    };
    driver.run(inbox, stop).await;
    Ok(())
}

/// Asks every price source once at start, so that an operator learns within seconds, not at the
/// first observation, whether the node can observe at all, and what to do if it cannot.
async fn probe_sources(sources: Sources, min_sources: usize, health: Arc<Mutex<Health>>) {
    let fetched = sources.fetch().await;
    for (exchange, error) in &fetched.failed {
        tracing::warn!(%exchange, %error, "price source failed");
    }
    let answered = fetched.answered.len();
    if let Ok(mut health) = health.lock() {
        health.sources_answered.get_or_insert(answered);
    }
    if answered < min_sources {
        tracing::error!(
            answered,
            needed = min_sources,
            "too few price sources answer: this node will neither publish nor co-sign until they \
             do (and /health says so). Check its internet access, or point --coinbase-url, \
             --coingecko-url and --kraken-url (ORACLE_COINBASE_URL, ...) at sources it can reach"
        );
    } else {
        let names: Vec<String> = fetched
            .answered
            .iter()
            .map(|(e, _)| e.to_string())
            .collect();
        tracing::info!(sources = %names.join(", "), "price sources answer");
    }
}

/// One node and its loop: events come from the network, the clock and the tasks beside the node,
/// and each goes through `Node::drive`, the loop the simulation runs too.
struct Driver {
    node: Node,
    /// Records everything the node is fed, unless turned off or failed.
    recorder: Option<Recorder>,
    /// The node's time: monotonic since `started`, following the wall clock deliberately.
    clock: Clock,
    started: Instant,
    /// The clock offset `/health` last showed, so that it is updated only when it changes.
    shown_offset_ms: i64,
    /// Decided once from the settings: whether peers' private addresses may be dialled.
    private_deployment: bool,
    next_token: u64,
    peers: usize,
    io: NodeIo,
}

/// What the node's actions are carried out with.
struct NodeIo {
    settings: Settings,
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    store: Arc<Store>,
    /// Where tasks beside the node send their results.
    events: mpsc::UnboundedSender<Event>,
    /// Gossip messages awaiting the node's verdict, by token.
    pending: HashMap<u64, (MessageId, PeerId)>,
    writes: JoinSet<()>,
    health: Arc<Mutex<Health>>,
    metrics: Metrics,
}

impl Driver {
    async fn run(
        &mut self,
        mut inbox: mpsc::UnboundedReceiver<Event>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        let mut redial = tokio::time::interval(REDIAL_EVERY);
        loop {
            self.follow_wall_clock();
            let wait = self
                .node
                .poll_timeout()
                .map_or(Duration::from_secs(3_600), |(at, _)| {
                    Duration::from_millis(at.saturating_sub(self.now()))
                });
            tokio::select! {
                () = &mut stop => break,
                event = self.io.swarm.select_next_some() => self.on_swarm(event),
                Some(event) = inbox.recv() => self.on_result(event),
                () = tokio::time::sleep(wait) => self.feed(Event::TimerDue),
                _ = redial.tick() => self.redial(),
                Some(_) = self.io.writes.join_next(), if !self.io.writes.is_empty() => {}
            }
        }
        tracing::info!(name = %self.io.settings.name, writes = self.io.writes.len(), "stopping");
        if let Some(recorder) = &mut self.recorder
            && let Err(error) = recorder.finish()
        {
            let file = recorder.path().display().to_string();
            tracing::error!(name = %self.io.settings.name, %file, %error, "the flight recorder could not finish");
        }
        let drained = tokio::time::timeout(DRAIN_WRITES_FOR, async {
            while self.io.writes.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!(name = %self.io.settings.name, "writes still in flight at exit");
        }
    }

    /// The node's time now.
    fn now(&self) -> u64 {
        self.clock.now(self.started.elapsed().as_millis() as u64)
    }

    /// Follows the wall clock as `protocol::Clock` says, and says so when it stepped.
    fn follow_wall_clock(&mut self) {
        let mono = self.started.elapsed().as_millis() as u64;
        if let Some(offset_ms) = self.clock.follow(now_ms(), mono) {
            let how = if offset_ms > 0 {
                "followed at once"
            } else {
                "followed by running slower until caught up"
            };
            tracing::warn!(name = %self.io.settings.name, offset_ms, how, "the wall clock stepped");
        }
        let offset_ms = self.clock.offset_ms();
        if offset_ms != self.shown_offset_ms {
            self.shown_offset_ms = offset_ms;
            self.io.health(|h| h.clock_offset_ms = offset_ms);
        }
    }

    /// A result from beside the node: noted for `/health`, then fed to the node.
    fn on_result(&mut self, event: Event) {
        match &event {
            Event::DatabaseRead { stored, .. } => self.io.health(|h| {
                h.database_answered_at = Some(Instant::now());
                h.database_reachable = true;
                stored.iter().for_each(|&id| h.stored(id));
            }),
            Event::DatabaseUnreachable => self.io.health(|h| h.database_reachable = false),
            _ => {}
        }
        self.feed(event);
    }

    /// Feeds one event to the node through the loop both drivers share.
    fn feed(&mut self, event: Event) {
        let now = self.now();
        match &mut self.recorder {
            Some(recorder) => {
                if let Err(error) = recorder.drive(&mut self.node, now, event, &mut self.io) {
                    let file = recorder.path().display().to_string();
                    tracing::error!(name = %self.io.settings.name, %file, %error, "the flight recorder failed and stopped; the node goes on");
                    self.recorder = None;
                }
            }
            None => self.node.drive(now, event, &mut self.io),
        }
        if let Ok(mut counters) = self.io.metrics.node.lock() {
            counters.clone_from(self.node.counters());
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.next_token += 1;
                let token = self.next_token;
                self.io
                    .pending
                    .insert(token, (message_id, propagation_source));
                let event = Event::Gossip {
                    message: MessageRef { token },
                    bytes: message.data,
                };
                self.feed(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { .. } | gossipsub::Event::Unsubscribed { .. },
            ))
            | SwarmEvent::ConnectionClosed { .. } => self.count_peers(),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let private = self.private_deployment;
                network::learn(&mut self.io.swarm, private, peer_id, &info.listen_addrs)
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(name = %self.io.settings.name, %address, "listening");
            }
            _ => {}
        }
    }

    fn count_peers(&mut self) {
        let signers = &self.io.settings.config.signers;
        let peers = network::member_peers(&self.io.swarm, &self.io.topic, signers);
        if peers != self.peers {
            self.peers = peers;
            self.io.health(|h| h.peers = peers);
            tracing::info!(name = %self.io.settings.name, peers, "gossip peers that are members");
            self.feed(Event::PeersChanged { count: peers });
        }
    }

    fn redial(&mut self) {
        if self.peers >= self.io.settings.config.min_peers {
            return;
        }
        for address in &self.io.settings.bootstrap {
            let _ = self.io.swarm.dial(address.clone());
        }
        let _ = self.io.swarm.behaviour_mut().kademlia.bootstrap();
    }
}

impl protocol::Io for NodeIo {
    fn sign(&mut self, _id: protocol::PriceId, digest: &[u8; 32]) -> protocol::Signature {
        self.settings.key.sign(digest)
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::FetchPrices => {
                let (sources, events) = (self.settings.sources.clone(), self.events.clone());
                let name = self.settings.name.clone();
                let failures = self.metrics.source_failures.clone();
                tokio::spawn(async move {
                    let fetched = sources.fetch().await;
                    for (exchange, error) in &fetched.failed {
                        tracing::warn!(%name, %exchange, %error, "price source failed");
                        let source = exchange.to_string();
                        failures.get_or_create(&SourceLabel { source }).inc();
                    }
                    let answered = fetched.answered.into_iter().map(|(_, p)| p).collect();
                    let _ = events.send(Event::PricesFetched { answered });
                });
            }
            // Answered at once by `sign`; `Node::drive` never passes it here.
            Action::Sign { .. } => {}
            Action::Broadcast { id, why, bytes } => {
                let topic = self.topic.clone();
                if let Err(error) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    let reason = network::refusal(&error);
                    let label = Reason { reason };
                    self.metrics.broadcasts_refused.get_or_create(&label).inc();
                    // The same bytes, already sent or received here: with a nonce drawn for every
                    // send, not expected (see PROTOCOL.md on the nonce).
                    if matches!(error, gossipsub::PublishError::Duplicate) {
                        tracing::debug!(%id, ?why, "broadcast refused as a duplicate");
                    } else {
                        tracing::warn!(%id, ?why, %error, "broadcast failed");
                    }
                } else {
                    tracing::debug!(%id, ?why, "broadcast");
                }
            }
            Action::Verdict { message, verdict } => {
                if let Some((id, peer)) = self.pending.remove(&message.token) {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(&id, &peer, network::acceptance(verdict));
                }
            }
            Action::Heartbeat => {
                let (store, events) = (self.store.clone(), self.events.clone());
                let (address, name) = (self.settings.key.address(), self.settings.name.clone());
                tokio::spawn(async move {
                    if let Err(error) = store.heartbeat(address, &name).await {
                        tracing::warn!(%name, %error, "database unreachable");
                        let _ = events.send(Event::DatabaseUnreachable);
                    }
                });
            }
            Action::ReadDatabase { stored_since } => {
                let (store, events) = (self.store.clone(), self.events.clone());
                tokio::spawn(async move {
                    let event = match store.read(stored_since).await {
                        Ok((heartbeats, stored)) => Event::DatabaseRead { heartbeats, stored },
                        Err(_) => Event::DatabaseUnreachable,
                    };
                    let _ = events.send(event);
                });
            }
            Action::Write(price) => {
                let (store, events) = (self.store.clone(), self.events.clone());
                let config = self.settings.config.clone();
                let name = self.settings.name.clone();
                let (metrics, health) = (self.metrics.clone(), self.health.clone());
                self.writes.spawn(async move {
                    let id = price.message.body.id;
                    let outcome = write(&store, &price, &config, &name, &metrics, &health).await;
                    let _ = events.send(Event::WriteFinished { id, outcome });
                });
            }
            Action::Report(report) => {
                self.measure(&report);
                self.log(report);
            }
        }
    }
}

impl NodeIo {
    fn health(&self, change: impl FnOnce(&mut Health)) {
        if let Ok(mut health) = self.health.lock() {
            change(&mut health);
        }
    }

    /// What the node's counters do not hold: latencies, and what `/health` shows.
    fn measure(&self, report: &Report) {
        let seconds = |ms: u64| ms as f64 / 1_000.0;
        match *report {
            Report::QuorumReached { after_ms, .. } => {
                self.metrics.to_quorum_seconds.observe(seconds(after_ms))
            }
            Report::Stored { id, after_ms, .. } => {
                self.metrics.to_storage_seconds.observe(seconds(after_ms));
                self.health(|h| h.stored(id));
            }
            Report::WriterChanged { writer } => self.health(|h| h.writer = writer),
            Report::Observed { sources, .. } => self.health(|h| h.sources_answered = Some(sources)),
            Report::SourcesInsufficient { answered, .. } => {
                self.health(|h| h.sources_answered = Some(answered))
            }
            Report::OwnSignatureFault { .. } => self.health(|h| h.own_signature_faults += 1),
            _ => {}
        }
    }

    fn log(&self, report: Report) {
        let name = &self.settings.name;
        let decimals = self.settings.config.decimals;
        match report {
            Report::Observed { price, sources } => {
                tracing::info!(%name, price = %price.display(decimals), sources, "observed")
            }
            Report::SourcesInsufficient { answered, needed } => {
                tracing::warn!(%name, answered, needed, "too few price sources answered")
            }
            Report::WaitingForPeers { peers, needed } => {
                tracing::info!(%name, peers, needed, "waiting for peers ...")
            }
            Report::PeersEnough { peers } => tracing::info!(%name, peers, "enough peers"),
            Report::Published { id, price } => {
                tracing::info!(%name, %id, price = %price.display(decimals), "published")
            }
            Report::CoSigned { id, origin } => tracing::info!(%name, %id, %origin, "co-signed"),
            Report::Refused { id, why } => tracing::info!(%name, %id, ?why, "refused to co-sign"),
            Report::QuorumReached {
                id,
                signers,
                after_ms,
            } => tracing::info!(%name, %id, signers, after_ms, "quorum reached"),
            Report::Stored {
                id,
                outcome,
                signers,
                after_ms,
            } => tracing::debug!(%name, %id, ?outcome, signers, after_ms, "write finished"),
            Report::WriterChanged { writer } => tracing::info!(%name, writer, "writer role"),
            Report::OwnSignatureFault { id } => tracing::error!(
                %name,
                %id,
                "a signature by this node's own key does not verify: the node cannot publish or \
                 co-sign; check the key file and the machine"
            ),
            Report::Expired { id, reached_quorum } => {
                tracing::warn!(%name, %id, reached_quorum, "expired unstored")
            }
        }
    }
}

/// Stores a ready price as the node's writer does. When the id is already stored, the row found is
/// read back and audited: honest writers store only audited rows, so one that fails was written
/// by somebody else holding the database's credentials, and is logged, counted and shown by
/// `/health`.
pub async fn write(
    store: &Store,
    price: &protocol::PriceRow,
    config: &Config,
    name: &str,
    metrics: &Metrics,
    health: &Mutex<Health>,
) -> WriteOutcome {
    let id = price.message.body.id;
    match store.insert(price, config.quorum).await {
        Ok(WriteOutcome::Inserted) => {
            let body = price.message.body;
            let signers: Vec<String> = price.signatures().keys().map(|s| s.to_string()).collect();
            tracing::info!(
                %name,
                %id,
                price = %body.price.display(body.decimals),
                signers = %signers.join(","),
                "stored"
            );
            WriteOutcome::Inserted
        }
        Ok(WriteOutcome::AlreadyPresent) => {
            match verify::verify(store, config, 0, Some(id)).await {
                Ok(summary) => {
                    for failure in summary.failures {
                        tracing::error!(
                            %name,
                            %id,
                            reason = %failure.reason,
                            "the row stored under this id fails its audit: written by someone \
                             holding the database's credentials, not by the protocol"
                        );
                        metrics.stored_rows_failing_audit.inc();
                        if let Ok(mut health) = health.lock() {
                            health.stored_rows_failing_audit.push(failure.id);
                        }
                    }
                }
                Err(error) => tracing::warn!(%name, %id, %error, "cannot read a stored row back"),
            }
            WriteOutcome::AlreadyPresent
        }
        Ok(WriteOutcome::Failed) => WriteOutcome::Failed,
        Err(error) => {
            tracing::warn!(%name, %id, %error, "write failed; it will be retried");
            WriteOutcome::Failed
        }
    }
}
