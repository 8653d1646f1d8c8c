//! Four real nodes on loopback: libp2p between them, exchange-shaped JSON from a loopback HTTP
//! server, real PostgreSQL. Every stored price is stored once with at least 3 valid signatures;
//! with the bootstrap node stopped, the other three, found through Kademlia, still store new prices; with the database connection
//! cut and restored, what reached quorum meanwhile is stored.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    Proxy, database_url, exchanges, fast_config, free_port, loopback, loopback_node, spawn_node,
    without_schema,
};
use protocol::{Address, Config, Keypair, PriceId};
use runtime::driver;
use runtime::store::Store;
use tokio::sync::oneshot;

fn keys() -> Vec<Keypair> {
    (0x41..=0x44).map(protocol::testing::key).collect()
}

#[derive(Debug)]
struct Stored {
    id: PriceId,
    origin: Address,
    signers: i16,
    observed_at_ms: u64,
}

struct Cluster {
    client: tokio_postgres::Client,
    schema: String,
    stops: Vec<Option<oneshot::Sender<()>>>,
    nodes: Vec<tokio::task::JoinHandle<()>>,
    proxy: Proxy,
    /// Node 0's /health and /metrics.
    http: std::net::SocketAddr,
    /// Node 0's libp2p address.
    entry: libp2p::Multiaddr,
}

impl Cluster {
    async fn start(keys: &[Keypair], config: &Config) -> Cluster {
        let schema = format!("cluster_{}", std::process::id());
        let client = without_schema(&schema).await;
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .unwrap();
        let base = exchanges().await;
        // The nodes reach the database through a proxy the test can cut.
        let proxy = Proxy::start().await;
        let via_proxy = proxy.url();
        let ports: Vec<u16> = keys.iter().map(|_| free_port()).collect();
        let mut cluster = Cluster {
            client,
            schema: schema.clone(),
            stops: Vec::new(),
            nodes: Vec::new(),
            proxy,
            http: ([127, 0, 0, 1], free_port()).into(),
            entry: loopback(ports[0]),
        };
        for (i, key) in keys.iter().enumerate() {
            let http = (i == 0).then_some(cluster.http);
            let settings = loopback_node(i, key, config, &ports, &base, http);
            // Each node has its own connection, as on separate machines.
            let store = Store::postgres(&via_proxy, Some(&schema)).await.unwrap();
            let (stop, node) = spawn_node(settings, store);
            cluster.stops.push(Some(stop));
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Every stored row.
    async fn rows(&self) -> Vec<Stored> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT id::text, origin, signer_count, observed_at_ms FROM {}.prices
                     ORDER BY id",
                    self.schema
                ),
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| Stored {
                id: runtime::store::parse_id(r.get(0)).unwrap(),
                origin: Address::parse(r.get(1)).unwrap(),
                signers: r.get(2),
                observed_at_ms: r.get::<_, i64>(3) as u64,
            })
            .collect()
    }

    /// Waits until `enough` says the rows suffice; panics with what is stored after `limit`.
    async fn wait_for(&self, limit: Duration, enough: impl Fn(&[Stored]) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let rows = self.rows().await;
            if enough(&rows) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not enough stored within {limit:?}: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn stop(&mut self, node: usize) {
        if let Some(stop) = self.stops[node].take() {
            let _ = stop.send(());
        }
        (&mut self.nodes[node]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_store_each_price_once_then_three_carry_on() {
    let keys = keys();
    let config = fast_config("clustertest", &keys);
    let mut cluster = Cluster::start(&keys, &config).await;

    // Every node's prices get stored: each origin at least once.
    cluster
        .wait_for(Duration::from_secs(60), |rows| {
            keys.iter()
                .all(|k| rows.iter().any(|row| row.origin == k.address()))
        })
        .await;
    let store = Store::postgres(&database_url(), Some(&cluster.schema))
        .await
        .unwrap();
    let audit = |rows: Vec<Stored>| {
        let store = &store;
        let config = &config;
        async move {
            for row in rows {
                assert!(row.signers >= 3, "{row:?}");
                let stored = store.get(row.id).await.unwrap().unwrap();
                assert_eq!(stored.price.audit(config), Ok(()), "{row:?}");
            }
        }
    };
    audit(cluster.rows().await).await;

    // Node 0 says how it is, and what it did, over HTTP.
    let get = |path: &str| reqwest::get(format!("http://{}{path}", cluster.http));
    let health = get("/health").await.unwrap();
    assert_eq!(health.status(), 200);
    let health = health.text().await.unwrap();
    for field in [
        "\"peers\":3",
        "\"database_reachable\":true",
        "\"last_stored\":{\"id\"",
    ] {
        assert!(health.contains(field), "{field} in {health}");
    }
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    // Everything the node counts is there, read from its own counters.
    for metric in [
        "oracle_prices_published_total",
        "oracle_prices_cosigned_total",
        "oracle_quorums_reached_total",
        "oracle_broadcasts_total",
        "oracle_own_signature_faults_total 0",
        "oracle_ignored_messages_total{kind=\"duplicate\"}",
        "oracle_peers 3",
        "oracle_publication_to_quorum_seconds_count",
    ] {
        assert!(metrics.contains(metric), "{metric} in {metrics}");
    }

    // A peer off the allowlist floods junk: node 0 rejects and counts every message (scoring then
    // graylists the sender), and the network goes on storing prices.
    let junk = spam(&cluster.entry, &config).await;
    let invalid = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("oracle_invalid_messages_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        // The long one reached validation: the frame limit is not one message's size.
        if invalid(&metrics) > 0 && metrics.contains("kind=\"malformed: too long\"") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no junk counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Connected and subscribed, the outsider still does not count as one of node 0's peers: only
    // members do, so outsiders cannot make an isolated node believe it is connected.
    let health = get("/health").await.unwrap().text().await.unwrap();
    assert!(health.contains("\"peers\":3"), "{health}");
    junk.abort();

    // Node 0, the only bootstrap address, stops; the other three, having found each other through
    // Kademlia, still reach quorum and store new prices.
    cluster.stop(0).await;
    let before: BTreeSet<PriceId> = cluster.rows().await.iter().map(|r| r.id).collect();
    let stopped = keys[0].address();
    cluster
        .wait_for(Duration::from_secs(60), |rows| {
            let new = rows
                .iter()
                .filter(|row| !before.contains(&row.id) && row.origin != stopped);
            new.count() >= 3
        })
        .await;

    // The database connection is cut for a while, then restored: what the three published
    // meanwhile reaches quorum, waits, and is stored once the database is back.
    let cut_from = driver::now_ms();
    cluster.proxy.cut();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cut_until = driver::now_ms();
    cluster.proxy.restore();
    cluster
        .wait_for(Duration::from_secs(60), |rows| {
            keys[1..].iter().all(|k| {
                rows.iter().any(|row| {
                    row.origin == k.address() && (cut_from..cut_until).contains(&row.observed_at_ms)
                })
            })
        })
        .await;
    audit(cluster.rows().await).await;
    for node in 1..4 {
        cluster.stop(node).await;
    }
}

/// A libp2p peer that joins through `entry` and publishes junk on the oracle's topic until aborted.
async fn spam(entry: &libp2p::Multiaddr, config: &Config) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    let outsider = protocol::testing::key(0x99);
    let topic = runtime::network::topic(&config.network_id());
    let listen = loopback(free_port());
    let mut swarm = runtime::network::start(
        &outsider,
        &topic,
        Duration::from_secs(60),
        &[listen],
        std::slice::from_ref(entry),
    )
    .unwrap();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n: u32 = 0;
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                _ = tick.tick() => {
                    n += 1;
                    // Version 1, then junk: first longer than any valid message (though well within
                    // a gossipsub frame, which may batch several), then too short.
                    let junk = match n % 2 {
                        1 => [&[1u8][..], &[0xee; 3_999]].concat(),
                        _ => [&[1u8][..], &n.to_be_bytes()].concat(),
                    };
                    let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), junk);
                }
            }
        }
    })
}
