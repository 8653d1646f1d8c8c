//! The libp2p layer's own bounds, on real swarms over loopback.

mod common;

use std::time::Duration;

use common::{fast_config, free_port, keys, loopback};
use futures_util::StreamExt;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use runtime::network::{self, MAX_CONNECTIONS_PER_PEER};

#[tokio::test]
async fn one_peer_gets_at_most_its_share_of_connections() {
    let keys = keys();
    let topic = network::topic(&fast_config("limits", &keys).network_id());
    let address = loopback(free_port());
    let cache = std::time::Duration::from_secs(60);
    let mut node =
        network::start(&keys[0], &topic, cache, std::slice::from_ref(&address), &[]).unwrap();
    let mut peer = network::start(&keys[1], &topic, cache, &[loopback(free_port())], &[]).unwrap();
    let node_id = *node.local_peer_id();
    // Let the node listen before the peer dials it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(
            node.select_next_some().await,
            libp2p::swarm::SwarmEvent::NewListenAddr { .. }
        ) {}
    })
    .await
    .unwrap();
    for _ in 0..MAX_CONNECTIONS_PER_PEER + 3 {
        let dial = DialOpts::peer_id(node_id)
            .addresses(vec![address.clone()])
            .condition(PeerCondition::Always)
            .build();
        peer.dial(dial).unwrap();
    }
    let settle = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(settle);
    loop {
        tokio::select! {
            _ = node.select_next_some() => {}
            _ = peer.select_next_some() => {}
            () = &mut settle => break,
        }
    }
    let established = node.network_info().connection_counters().num_established();
    assert_eq!(established, MAX_CONNECTIONS_PER_PEER);
}
