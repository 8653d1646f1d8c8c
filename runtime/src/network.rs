//! The gossip network: libp2p with TCP, noise and yamux; gossipsub on a topic named from the network
//! id; Kademlia and identify to find peers from the bootstrap addresses. The node's one secp256k1
//! key is also its libp2p identity.
//!
//! Our messages carry their own signatures, so gossipsub runs in anonymous mode (no envelope to
//! verify on every copy) with a content-hash message id, and holds each message until the
//! protocol's verdict: accept forwards it, reject penalises the sender through peer scoring
//! (graylisted after a few invalid messages), ignore drops it quietly.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use libp2p::identity::{self, secp256k1};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, PeerId, Swarm, identify, noise, tcp, yamux};
use protocol::{Keypair, MAX_MESSAGE_LEN, Verdict};

/// Gossipsub's framing around our payload stays well under this.
const TRANSMIT_SLACK: usize = 512;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub kademlia: kad::Behaviour<MemoryStore>,
    pub identify: identify::Behaviour,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot listen on {address}: {why}")]
    Listen { address: Multiaddr, why: String },
    #[error("the libp2p transport could not be built: {0}")]
    Transport(String),
    #[error("gossipsub: {0}")]
    Gossipsub(String),
}

/// The libp2p identity of a node key.
pub fn identity(key: &Keypair) -> identity::Keypair {
    let mut secret = key.secret_bytes();
    let secret = secp256k1::SecretKey::try_from_bytes(&mut secret).expect("a valid secp256k1 key");
    identity::Keypair::from(secp256k1::Keypair::from(secret))
}

/// The gossip topic of a network: every deployment gets its own.
pub fn topic(network_id: &[u8; 32]) -> IdentTopic {
    IdentTopic::new(format!("price-oracle/{}", hex::encode(&network_id[..8])))
}

pub fn acceptance(verdict: Verdict) -> MessageAcceptance {
    match verdict {
        Verdict::Accept => MessageAcceptance::Accept,
        Verdict::Ignore(_) => MessageAcceptance::Ignore,
        Verdict::Reject(_) => MessageAcceptance::Reject,
    }
}

/// A swarm listening on `listen`, subscribed to `topic`, dialling `bootstrap`.
pub fn start(
    key: &Keypair,
    topic: &IdentTopic,
    listen: &[Multiaddr],
    bootstrap: &[Multiaddr],
) -> Result<Swarm<Behaviour>, NetworkError> {
    let transport = |e: &dyn std::fmt::Display| NetworkError::Transport(e.to_string());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity(key))
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        // Bootstrap addresses may name hosts (/dns4/node1/tcp/4001).
        .with_dns()
        .map_err(|e| transport(&e))?
        .with_behaviour(|key| behaviour(key, topic))
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for address in listen {
        swarm
            .listen_on(address.clone())
            .map_err(|e| NetworkError::Listen {
                address: address.clone(),
                why: e.to_string(),
            })?;
    }
    for address in bootstrap {
        // A bootstrap peer that is down is retried by the caller; it is not fatal.
        if let Err(error) = swarm.dial(address.clone()) {
            tracing::warn!(%address, %error, "cannot dial bootstrap peer");
        }
    }
    Ok(swarm)
}

fn behaviour(
    key: &identity::Keypair,
    topic: &IdentTopic,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            message.data.hash(&mut hasher);
            MessageId::from(hasher.finish().to_be_bytes().to_vec())
        })
        .max_transmit_size(MAX_MESSAGE_LEN + TRANSMIT_SLACK)
        .heartbeat_interval(Duration::from_secs(1))
        .build()?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
    gossipsub.subscribe(topic)?;
    gossipsub.with_peer_score(score_params(topic), thresholds())?;
    let peer_id = key.public().to_peer_id();
    let mut kademlia = kad::Behaviour::new(peer_id, MemoryStore::new(peer_id));
    kademlia.set_mode(Some(kad::Mode::Server));
    let identify = identify::Behaviour::new(identify::Config::new(
        "/price-oracle/1".to_owned(),
        key.public(),
    ));
    Ok(Behaviour {
        gossipsub,
        kademlia,
        identify,
    })
}

/// Scoring counts only what the protocol can prove: invalid messages. Quiet topics and shared IPs
/// (a devnet on one machine) must not cost honest peers anything.
fn score_params(topic: &IdentTopic) -> PeerScoreParams {
    let topic_params = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    };
    PeerScoreParams {
        topics: HashMap::from([(topic.hash(), topic_params)]),
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    }
}

/// One invalid message costs -10 (no more gossip to the sender), three -90 (graylisted).
fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        ..PeerScoreThresholds::default()
    }
}

/// Peers subscribed to our topic: what the protocol counts toward its minimum.
pub fn topic_peers(swarm: &Swarm<Behaviour>, topic: &IdentTopic) -> usize {
    let hash = topic.hash();
    swarm
        .behaviour()
        .gossipsub
        .all_peers()
        .filter(|(_, topics)| topics.contains(&&hash))
        .count()
}

/// Learns a peer's listen addresses (from identify) for Kademlia.
pub fn learn(swarm: &mut Swarm<Behaviour>, peer: PeerId, addresses: &[Multiaddr]) {
    for address in addresses {
        swarm
            .behaviour_mut()
            .kademlia
            .add_address(&peer, address.clone());
    }
}
