//! Our nodes with a peer from another libp2p implementation, written from PROTOCOL.md alone:
//! `tests/interop/peer.mjs` on js-libp2p (Node.js). Three of our nodes on loopback with real
//! PostgreSQL; the JavaScript peer holds the fourth allowlisted key and joins through node 0. It
//! must verify every price our nodes send with its own decoder and crypto libraries, get messages
//! through IHAVE/IWANT (which needs both sides to compute the same message id), and publish prices
//! of its own that our nodes co-sign and store, without any of our nodes counting it as invalid.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    database_url, exchanges, fast_config, free_port, loopback_node, spawn_node, without_schema,
};
use protocol::{Keypair, Price, PriceId};
use runtime::store::Store;
use serde_json::Value;

/// Our nodes; the allowlist has one more key, the JavaScript peer's.
const OUR_NODES: usize = 3;
/// How long the JavaScript peer runs, how many prices it publishes and how far apart.
const PEER_RUNS_FOR: Duration = Duration::from_secs(25);
const PEER_PUBLISHES: usize = 3;
const PEER_PUBLISHES_EVERY: Duration = Duration::from_secs(5);
/// What the peer publishes: near the median the exchanges below quote (3012.4517), well within
/// the 1 % our nodes accept.
const PEER_PRICE: &str = "3012.45";

fn keys() -> Vec<Keypair> {
    (0x61..=0x64).map(protocol::testing::key).collect()
}

/// The peer's directory, with its locked dependencies installed. Node.js and npm are required: a
/// machine without them fails here rather than skipping the test.
fn peer_directory() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let version = Command::new("node").arg("--version").output().unwrap_or_else(|e| {
        panic!("the interop test runs a js-libp2p peer and needs Node.js 20 or later (`node` on PATH): {e}")
    });
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "the interop test needs Node.js 20 or later, found {version:?}"
    );
    if !dir.join("node_modules").exists() {
        // `npm ci` installs exactly package-lock.json.
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| {
                panic!("the interop test needs npm on PATH to install its peer: {e}")
            });
        assert!(installed.success(), "`npm ci` failed in {}", dir.display());
    }
    dir
}

/// A child process killed when dropped, so that a failing test leaves no peer running.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the JavaScript peer printed: one JSON object per line.
struct PeerOutput {
    events: Vec<Value>,
    stderr: String,
    success: bool,
}

impl PeerOutput {
    fn first(&self, event: &str) -> Option<&Value> {
        self.events.iter().find(|e| e["event"] == event)
    }

    /// The lines and stderr, for assertion messages.
    fn transcript(&self) -> String {
        let lines: Vec<String> = self.events.iter().map(Value::to_string).collect();
        format!("{}\n--- stderr ---\n{}", lines.join("\n"), self.stderr)
    }
}

/// Runs the peer to its end (it stops by itself; a few seconds' grace, then it is killed).
async fn run_peer(dir: &Path, args: Vec<String>) -> PeerOutput {
    let mut child = Command::new("node")
        .arg("peer.mjs")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut peer = Peer(child);
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|line| serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line.clone())))
            .collect::<Vec<Value>>()
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = tokio::time::Instant::now() + PEER_RUNS_FOR + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = peer.0.try_wait().unwrap() {
            break Some(status);
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(peer);
    PeerOutput {
        events: lines.join().unwrap(),
        stderr: errors.join().unwrap(),
        success: status.is_some_and(|s| s.success()),
    }
}

/// `oracle_invalid_messages_total`, all kinds, in a /metrics text.
fn invalid_messages(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("oracle_invalid_messages_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_libp2p_peer_verifies_our_prices_and_its_own_get_cosigned_and_stored() {
    let dir = peer_directory();
    let keys = keys();
    let config = fast_config("interoptest", &keys);
    let js_key = &keys[OUR_NODES];

    let schema = format!("interop_{}", std::process::id());
    let client = without_schema(&schema).await;
    let base = exchanges().await;
    let ports: Vec<u16> = (0..OUR_NODES).map(|_| free_port()).collect();
    let https: Vec<std::net::SocketAddr> = (0..OUR_NODES)
        .map(|_| ([127, 0, 0, 1], free_port()).into())
        .collect();
    // Each node records what it was fed: a price that misses quorum is told from all three sides.
    let recordings = std::env::temp_dir().join(format!("interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&recordings);
    let mut stops = Vec::new();
    let mut nodes = Vec::new();
    for (i, key) in keys[..OUR_NODES].iter().enumerate() {
        let mut settings = loopback_node(i, key, &config, &ports, &base, Some(https[i]));
        settings.recording = Some((recordings.clone(), 64 << 20));
        let store = Store::postgres(&database_url(), Some(&schema))
            .await
            .unwrap();
        let (stop, node) = spawn_node(settings, store);
        stops.push(stop);
        nodes.push(node);
    }
    let get = |node: usize, path: &str| {
        let url = format!("http://{}{path}", https[node]);
        async move { reqwest::get(url).await?.text().await }
    };
    // Node 0 serves /health once it listens for peers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(0, "/health").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 0 did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let network_id = config.network_id();
    let entry = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        ports[0],
        runtime::network::identity(&keys[0]).public().to_peer_id()
    );
    let signers: Vec<String> = keys.iter().map(|k| k.address().to_string()).collect();
    let args = [
        ("--bootstrap", entry),
        (
            "--topic",
            runtime::network::topic(&network_id).hash().into_string(),
        ),
        ("--network-id", format!("0x{}", hex::encode(network_id))),
        ("--network", config.network.clone()),
        ("--feed", config.feed.to_string()),
        ("--decimals", config.decimals.to_string()),
        ("--quorum", config.quorum.to_string()),
        ("--signers", signers.join(",")),
        ("--key", format!("0x{}", hex::encode(js_key.secret_bytes()))),
        ("--price", PEER_PRICE.to_owned()),
        ("--publishes", PEER_PUBLISHES.to_string()),
        (
            "--publish-every-ms",
            PEER_PUBLISHES_EVERY.as_millis().to_string(),
        ),
        ("--run-for-ms", PEER_RUNS_FOR.as_millis().to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect();
    let peer = run_peer(&dir, args).await;
    let transcript = peer.transcript();
    println!("{transcript}");

    // The peer ran to its end and agrees with us on the deployment: its own network id
    // computation, the topic name, and its key on the allowlist.
    assert!(peer.success, "the peer failed:\n{transcript}");
    let started = peer.first("started").expect("a started line");
    for agreed in ["allowlisted", "network_id_matches", "topic_matches"] {
        assert_eq!(started[agreed], true, "{agreed}:\n{transcript}");
    }
    let summary = peer.first("summary").expect("a summary line");
    assert_eq!(summary["address"], js_key.address().to_string());

    // Everything it received from us verified, prices of every one of our nodes among it.
    let received = summary["received"].as_u64().unwrap();
    assert!(received > 0, "the peer received nothing:\n{transcript}");
    assert_eq!(summary["failures"], Value::Array(vec![]), "{transcript}");
    assert_eq!(summary["verified"].as_u64(), Some(received), "{transcript}");
    for key in &keys[..OUR_NODES] {
        let from = &summary["by_origin"][key.address().to_string()];
        assert!(
            from.as_u64().is_some_and(|n| n > 0),
            "no verified price from {}:\n{transcript}",
            key.address()
        );
    }

    // Some of it came through IHAVE/IWANT: node 0 advertised ids the peer computed alike.
    assert!(
        summary["gossiped"].as_u64().is_some_and(|n| n > 0),
        "nothing reached the peer through IHAVE/IWANT:\n{transcript}"
    );
    // Until the end: node 0 gossips only to peers it scores above its gossip threshold, so the
    // peer was not penalised.
    let last = summary["last_gossiped_after_ms"].as_u64().unwrap_or(0);
    assert!(
        Duration::from_millis(last) + Duration::from_secs(5) > PEER_RUNS_FOR,
        "gossip to the peer stopped {last} ms into its run:\n{transcript}"
    );
    // And node 0 kept its promises to it all along.
    assert!(
        summary["bootstrap_score_min"]
            .as_f64()
            .is_some_and(|s| s >= 0.0),
        "the peer scored node 0 below zero:\n{transcript}"
    );

    // Every price it published came back to it co-signed to quorum, in one copy or in pieces
    // that it merged, as our nodes merge them ...
    let published: Vec<PriceId> = summary["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| runtime::store::parse_id(id.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(published.len(), PEER_PUBLISHES, "{transcript}");
    for id in &published {
        let signers = summary["own_signers"][id.to_string()].as_u64().unwrap_or(0);
        assert!(
            signers >= config.quorum as u64,
            "the peer never saw {id} with {} signatures:\n{transcript}\n{}",
            config.quorum,
            stories(&recordings, *id)
        );
    }

    // ... and is stored by our nodes, its signature and price as it signed them, every signature
    // valid. The last, published ten seconds after the first, shows our nodes still took the
    // peer's messages by then: they had neither rejected nor graylisted it.
    let store = Store::postgres(&database_url(), Some(&schema))
        .await
        .unwrap();
    let units = Price::parse_decimal(PEER_PRICE, config.decimals).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for &id in &published {
        let row = loop {
            if let Some(row) = store.get(id).await.unwrap() {
                break row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the peer's price {id} was not stored"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let price = &row.price;
        assert_eq!(price.origin, js_key.address(), "{id}");
        assert_eq!(price.message.body.price, units, "{id}");
        assert!(price.signatures().len() >= config.quorum, "{id}: {price:?}");
        assert!(price.signatures().contains_key(&js_key.address()), "{id}");
        assert_eq!(price.audit(&config), Ok(()), "{id}");
    }
    let rows = client
        .query(&format!("SELECT origin FROM {schema}.prices"), &[])
        .await
        .unwrap();
    let ours = |origin: &str| {
        keys[..OUR_NODES]
            .iter()
            .any(|k| k.address().to_string() == origin)
    };
    assert!(
        rows.iter().any(|r| ours(r.get::<_, &str>(0))),
        "none of our own prices were stored"
    );

    // None of our nodes rejected anything, from the peer or relayed from it.
    for node in 0..OUR_NODES {
        let metrics = get(node, "/metrics").await.unwrap();
        assert_eq!(invalid_messages(&metrics), 0, "node {node}:\n{metrics}");
    }

    for stop in stops {
        let _ = stop.send(());
    }
    for node in nodes {
        node.await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&recordings);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// What each of our nodes did with price `id`, as `runtime replay --id` tells it from its recording.
fn stories(recordings: &Path, id: PriceId) -> String {
    let told: Vec<String> = (0..OUR_NODES)
        .map(|node| {
            let file = recordings.join(format!("node-{node}.journal"));
            common::replay(&file, &["--id".into(), id.to_string()]).1
        })
        .collect();
    format!(
        "recordings kept in {}:\n{}",
        recordings.display(),
        told.join("\n")
    )
}
