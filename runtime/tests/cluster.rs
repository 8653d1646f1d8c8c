//! Four real nodes on loopback: libp2p between them, exchange-shaped JSON from a loopback HTTP
//! server, real PostgreSQL. Every stored price is stored once with at least 3 valid signatures;
//! with the bootstrap node stopped, the other three, found through Kademlia, still store new prices; with the database connection
//! cut and restored, what reached quorum meanwhile is stored.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    Proxy, database_url, exchanges, fast_config, free_port, loopback, loopback_node, replay,
    spawn_node, without_schema,
};
use protocol::{Address, Config, Keypair, PriceId};
use runtime::driver;
use runtime::store::Store;
use tokio::sync::oneshot;

/// Bytes node 3's flight recorder may keep: a few seconds' worth.
const ROTATING_LIMIT: u64 = 8 << 10;

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
    /// Where the nodes' flight recorders write.
    recordings: std::path::PathBuf,
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
            recordings: std::env::temp_dir().join(format!("cluster-{}", std::process::id())),
        };
        let _ = std::fs::remove_dir_all(&cluster.recordings);
        for (i, key) in keys.iter().enumerate() {
            let http = (i == 0).then_some(cluster.http);
            let mut settings = loopback_node(i, key, config, &ports, &base, http);
            // Node 3's recorder is so small that it rotates many times, each new file beginning
            // from a snapshot of the node.
            let limit = if i == 3 { ROTATING_LIMIT } else { 64 << 20 };
            settings.recording = Some((cluster.recordings.clone(), limit));
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
        "oracle_broadcasts_refused_total{reason=\"duplicate\"}",
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

    // Every node recorded everything it was fed, and replays to exactly the actions it took.
    for node in 0..4 {
        let mut files = vec![cluster.recordings.join(format!("node-{node}.journal"))];
        if node == 3 {
            files.push(cluster.recordings.join("node-3.journal.old"));
        }
        for file in files {
            // The seed in it foretells the node's gossip nonces: its owner's alone.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            let args = runtime::cli::ReplayArgs {
                file: file.clone(),
                id: None,
                until: None,
            };
            let mut said = Vec::new();
            let replayed = runtime::replay::replay(&args, &mut |line| said.push(line))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // The rotating node rotates right after the event that filled half its limit: if
            // that was its last before it stopped, its newest file holds only the snapshot it
            // begins from (the rotated-out file carries the events and their check).
            let only_a_snapshot = node == 3 && replayed.events == 0;
            assert!(
                replayed.checks > 0 || only_a_snapshot,
                "{}: {replayed:?}",
                file.display()
            );
            let from_snapshot = said.iter().any(|l| l.contains("from a snapshot"));
            assert_eq!(from_snapshot, node == 3, "{}: {said:?}", file.display());
        }
    }
    let rotated = std::fs::metadata(cluster.recordings.join("node-3.journal.old")).unwrap();
    assert!(
        rotated.len() <= ROTATING_LIMIT / 2 + MAX_RECORD,
        "{rotated:?}"
    );
    replay_as_an_operator_would(&cluster.recordings, &cluster.rows().await);
    let _ = std::fs::remove_dir_all(&cluster.recordings);
}

/// `runtime replay` on node 1's recording: a price's story, a stop at a moment, an altered event
/// caught, and a copy cut off mid-write read up to its last whole record.
fn replay_as_an_operator_would(dir: &std::path::Path, rows: &[Stored]) {
    use protocol::journal::{self, Record};
    let file = dir.join("node-1.journal");
    // Node 1 co-signs a price of node 2's unless two others bring it to quorum first (as when it
    // arrives before node 1's first observation): tell the story of one it did co-sign.
    let stories: Vec<(bool, String)> = rows
        .iter()
        .filter(|r| r.origin == keys()[2].address())
        .map(|r| replay(&file, &["--id".into(), r.id.to_string()]))
        .collect();
    assert!(stories.iter().all(|(ok, _)| *ok), "{stories:?}");
    let (_, said) = stories
        .iter()
        .find(|(_, said)| said.contains("CoSigned"))
        .unwrap_or_else(|| panic!("node 1 co-signed none of node 2's prices: {stories:?}"));
    for step in ["received a copy signed by", "checks matched"] {
        assert!(said.contains(step), "{step} in {said}");
    }
    let bytes = std::fs::read(&file).unwrap();
    let records: Vec<Record> = journal::records(&bytes)
        .unwrap()
        .map(|r| r.unwrap().1)
        .collect();
    let tenth = records
        .iter()
        .filter_map(|r| match r {
            Record::Fed { now, .. } => Some(*now),
            _ => None,
        })
        .nth(10)
        .unwrap();
    let (ok, said) = replay(&file, &["--until".into(), tenth.to_string()]);
    assert!(ok && said.contains("stopped at --until"), "{said}");

    // One price the sources answered, one unit higher: the replay signs other bytes.
    let mut altered = records.clone();
    let answered = altered.iter_mut().find_map(|r| match r {
        Record::Fed {
            event: protocol::Event::PricesFetched { answered },
            ..
        } if !answered.is_empty() => Some(answered),
        _ => None,
    });
    let answered = answered.expect("the node observed");
    answered[0] = protocol::Price(answered[0].0 + 1);
    let mut tampered = journal::MAGIC.to_vec();
    altered.iter().for_each(|r| r.encode(&mut tampered));
    let tampered_file = dir.join("tampered.journal");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let (ok, said) = replay(&tampered_file, &[]);
    assert!(
        !ok && said.contains("diverged from the recording between event"),
        "{said}"
    );

    let cut_file = dir.join("cut.journal");
    std::fs::write(&cut_file, &bytes[..bytes.len() - 3]).unwrap();
    let (ok, said) = replay(&cut_file, &[]);
    assert!(ok && said.contains("cut off mid-write"), "{said}");
}

/// More than one record of a node holds (a gossip message and its framing).
const MAX_RECORD: u64 = 8 << 10;

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
                    // The version, then junk: first longer than any valid message (though well
                    // within a gossipsub frame, which may batch several), then too short.
                    let version = protocol::wire::VERSION;
                    let junk = match n % 2 {
                        1 => [&[version][..], &[0xee; 3_999]].concat(),
                        _ => [&[version][..], &n.to_be_bytes()].concat(),
                    };
                    let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), junk);
                }
            }
        }
    })
}
