//! The gossip network: libp2p with TCP, noise and yamux; gossipsub on a topic named from the network
//! id; Kademlia and identify to find peers from the bootstrap addresses. The node's one secp256k1
//! key is also its libp2p identity.
//!
//! Our messages carry their own signatures, so gossipsub runs in anonymous mode (no envelope to
//! verify on every copy) with a content-hash message id (`protocol::message_id`), and holds each message until the
//! protocol's verdict: accept forwards it, reject penalises the sender through peer scoring
//! (`protocol::gossip`: out of the mesh after one invalid message, graylisted after three, both
//! decaying within seconds), ignore drops it quietly.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use libp2p::identity::{self, secp256k1};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, PeerId, Swarm, connection_limits, identify, noise, tcp, yamux};
use protocol::gossip as gossip_rules;
use protocol::{Address, Keypair, Signers, Verdict};

/// The largest gossipsub RPC frame read or sent. A frame is not one message: other implementations
/// answer an IWANT with several messages in one frame, next to control traffic, so it fits dozens
/// of our largest messages. A single message is bounded where it is validated (the decoder refuses
/// more than `MAX_MESSAGE_LEN` bytes before reading them, and the sender is penalised).
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Connections at most, in total: enough for a large network's mesh and discovery, few enough that
/// free identities cannot exhaust the node's sockets and memory.
pub const MAX_CONNECTIONS: u32 = 256;
/// Connections at most per peer: one each way.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Handshakes under way at most, each way.
pub const MAX_PENDING_CONNECTIONS: u32 = 32;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
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

/// Why gossipsub did not publish a message, as a metric label: each of [`REFUSALS`].
pub fn refusal(error: &gossipsub::PublishError) -> &'static str {
    use gossipsub::PublishError::*;
    match error {
        Duplicate => "duplicate",
        NoPeersSubscribedToTopic => "no peers",
        AllQueuesFull(_) => "queues full",
        MessageTooLarge => "too large",
        _ => "other",
    }
}

pub const REFUSALS: [&str; 5] = ["duplicate", "no peers", "queues full", "too large", "other"];

/// A swarm listening on `listen`, subscribed to `topic`, dialling `bootstrap`, remembering message
/// ids for `duplicate_cache` (`protocol::gossip::duplicate_cache_ms`).
pub fn start(
    key: &Keypair,
    topic: &IdentTopic,
    duplicate_cache: Duration,
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
        .with_behaviour(|key| behaviour(key, topic, duplicate_cache))
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
    duplicate_cache: Duration,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message| MessageId::from(protocol::message_id(&message.data).to_vec()))
        .max_transmit_size(MAX_FRAME_LEN)
        .prune_backoff(Duration::from_millis(gossip_rules::PRUNE_BACKOFF_MS))
        .heartbeat_interval(Duration::from_secs(1))
        .duplicate_cache_time(duplicate_cache)
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
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(MAX_CONNECTIONS))
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
        .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS));
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        gossipsub,
        kademlia,
        identify,
    })
}

/// Scoring counts only what the protocol can prove: invalid messages, with the numbers in
/// `protocol::gossip` (which the simulation applies too). Quiet topics and shared IPs (a devnet on
/// one machine) must not cost honest peers anything.
fn score_params(topic: &IdentTopic) -> PeerScoreParams {
    let topic_params = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: gossip_rules::INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: gossip_rules::DECAY,
        ..TopicScoreParams::default()
    };
    PeerScoreParams {
        topics: HashMap::from([(topic.hash(), topic_params)]),
        ip_colocation_factor_weight: 0.0,
        decay_interval: Duration::from_millis(gossip_rules::DECAY_INTERVAL_MS),
        decay_to_zero: gossip_rules::DECAY_TO_ZERO,
        ..PeerScoreParams::default()
    }
}

fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: gossip_rules::GOSSIP_THRESHOLD,
        publish_threshold: gossip_rules::PUBLISH_THRESHOLD,
        graylist_threshold: gossip_rules::GRAYLIST_THRESHOLD,
        ..PeerScoreThresholds::default()
    }
}

/// Peers subscribed to our topic that count toward the protocol's minimum: with an allowlist, only
/// peers whose libp2p identity is an allowlisted signer (the key is shared), so that outsiders, who
/// may connect and read, cannot stand in for members and let an isolated node publish into an
/// eclipse.
pub fn member_peers(swarm: &Swarm<Behaviour>, topic: &IdentTopic, signers: &Signers) -> usize {
    let hash = topic.hash();
    swarm
        .behaviour()
        .gossipsub
        .all_peers()
        .filter(|(_, topics)| topics.contains(&&hash))
        .filter(|(peer, _)| match signers {
            Signers::Open => true,
            Signers::Allowlist(list) => signer_of(peer).is_some_and(|a| list.contains(&a)),
        })
        .count()
}

/// The signer address of a peer whose libp2p identity is a secp256k1 key, as every node's is.
pub fn signer_of(peer: &PeerId) -> Option<Address> {
    let multihash = peer.as_ref();
    // Keys this small are inlined in the id: the identity multihash, code 0.
    if multihash.code() != 0 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest())
        .ok()?
        .try_into_secp256k1()
        .ok()?;
    Some(Address::of_uncompressed(&key.to_bytes_uncompressed()[1..]))
}

/// Learns a peer's listen addresses (from identify) for Kademlia: only addresses a node of this
/// deployment should dial. Peers choose what they advertise, so a private or loopback address
/// could steer this node's dials at internal hosts; those are kept only in a private deployment
/// (see [`is_private_deployment`]).
pub fn learn(
    swarm: &mut Swarm<Behaviour>,
    private_deployment: bool,
    peer: PeerId,
    addresses: &[Multiaddr],
) {
    for address in addresses {
        if private_deployment || is_global(address) {
            swarm
                .behaviour_mut()
                .kademlia
                .add_address(&peer, address.clone());
        }
    }
}

/// A devnet or a private network: the node is configured to listen on, or bootstrap from, a
/// specific address that is not global (loopback, private). Listening on every interface
/// (0.0.0.0) says nothing: such a node also listens on loopback, and is public all the same.
pub fn is_private_deployment(listen: &[Multiaddr], bootstrap: &[Multiaddr]) -> bool {
    let specific = |address: &&Multiaddr| {
        address.iter().all(|part| match part {
            Protocol::Ip4(ip) => !ip.is_unspecified(),
            Protocol::Ip6(ip) => !ip.is_unspecified(),
            _ => true,
        })
    };
    listen
        .iter()
        .chain(bootstrap)
        .filter(specific)
        .any(|address| !is_global(address))
}

/// Whether an address names a host on the public internet: not loopback, private, link-local,
/// shared (CGNAT), documentation, unspecified or multicast. Names (DNS) count as global.
pub fn is_global(address: &Multiaddr) -> bool {
    address.iter().all(|part| match part {
        Protocol::Ip4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        Protocol::Ip6(ip) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| !is_global(&Multiaddr::from(v4))))
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_global() {
        for private in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.1.2.3/tcp/4001",
            "/ip4/172.16.0.9/tcp/4001",
            "/ip4/192.168.1.1/tcp/4001",
            "/ip4/169.254.169.254/tcp/80",
            "/ip4/100.64.0.1/tcp/4001",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip6/fd00::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
            "/ip6/::ffff:10.0.0.1/tcp/4001",
        ] {
            assert!(!is_global(&private.parse().unwrap()), "{private}");
        }
        for public in [
            "/ip4/8.8.8.8/tcp/4001",
            "/ip6/2001:4860::8888/tcp/4001",
            "/dns4/node1/tcp/4001",
        ] {
            assert!(is_global(&public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn only_a_specific_private_address_makes_a_private_deployment() {
        let addresses =
            |list: &[&str]| -> Vec<Multiaddr> { list.iter().map(|a| a.parse().unwrap()).collect() };
        let every_interface = addresses(&["/ip4/0.0.0.0/tcp/4001"]);
        let public = addresses(&["/dns4/node1.example.org/tcp/4001", "/ip4/8.8.8.8/tcp/4001"]);
        assert!(!is_private_deployment(&every_interface, &public));
        assert!(!is_private_deployment(&every_interface, &[]));
        let lan = addresses(&["/ip4/10.0.0.2/tcp/4001"]);
        assert!(is_private_deployment(&every_interface, &lan));
        let devnet = addresses(&["/ip4/127.0.0.1/tcp/4001"]);
        assert!(is_private_deployment(&devnet, &[]));
    }

    #[test]
    fn a_peer_id_names_its_signer() {
        let key = protocol::testing::key(1);
        let peer = identity(&key).public().to_peer_id();
        assert_eq!(signer_of(&peer), Some(key.address()));
        let other = PeerId::random();
        assert_eq!(signer_of(&other), None);
    }
}
