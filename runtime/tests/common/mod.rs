//! Fixtures shared by the runtime's tests: keys, deployments, signed prices, fresh stores, a
//! database proxy to cut or freeze, and exchange-shaped prices from loopback.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use protocol::{Config, Feed, Keypair, PriceId, PriceRow, Signers};
use runtime::store::Store;

pub const T0: u64 = 1_767_225_600_000;

pub fn keys() -> Vec<Keypair> {
    protocol::testing::keys(4)
}

pub fn config(keys: &[Keypair]) -> Config {
    let list = keys.iter().map(Keypair::address);
    Config::new("storetest", Feed::eth_usd(), Signers::allowlist(list))
}

/// keys[0]'s price observed at `at`, signed by the first `signers` keys, written by keys[1].
pub fn price(keys: &[Keypair], at: u64, units: u128, signers: usize) -> PriceRow {
    let network_id = config(keys).network_id();
    let body = protocol::testing::body(&keys[0], at, units);
    let signers: Vec<&Keypair> = keys[..signers].iter().collect();
    PriceRow {
        message: protocol::testing::signed(network_id, body, &signers),
        origin: keys[0].address(),
        last_signature_at_ms: at + 1_234,
        writer: keys[1].address(),
    }
}

/// `count` of [`price`]'s prices a minute apart from T0, stored with quorum 3.
pub async fn store_prices(store: &Store, keys: &[Keypair], count: u64) -> Vec<PriceRow> {
    let prices: Vec<_> = (0..count)
        .map(|k| price(keys, T0 + k * 60_000, 301_245_170_000 + k as u128, 3))
        .collect();
    for price in &prices {
        store.insert(price, 3).await.unwrap();
    }
    prices
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A connection to the test's PostgreSQL with `schema` dropped, for a test to start afresh in.
pub async fn without_schema(schema: &str) -> tokio_postgres::Client {
    let client = connect(database_url().parse().unwrap()).await;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    client
}

/// A connection to the test's PostgreSQL as `config` says (its database, say).
pub async fn connect(config: tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at DATABASE_URL (default: the local server) must be running");
    tokio::spawn(connection);
    client
}

/// A PostgreSQL store in a schema of its own, emptied first.
pub async fn fresh_postgres(test: &str) -> Store {
    let schema = schema(test);
    without_schema(&schema).await;
    let store = Store::postgres(&database_url(), Some(&schema))
        .await
        .unwrap();
    // Applying the schema again changes nothing.
    Store::postgres(&database_url(), Some(&schema))
        .await
        .unwrap();
    store
}

/// The schema a test's PostgreSQL store lives in.
pub fn schema(test: &str) -> String {
    format!("store_{test}_{}", std::process::id())
}

pub async fn fresh_sqlite(test: &str) -> Store {
    let path: PathBuf =
        std::env::temp_dir().join(format!("store-{test}-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = Store::sqlite(&path).await.unwrap();
    Store::sqlite(&path).await.unwrap();
    store
}

/// An id no test stores.
pub fn unused_id() -> PriceId {
    PriceId::mint(T0 - 1, 7, keys()[3].address())
}

/// A TCP proxy in front of the test's PostgreSQL that a test can cut (connections closed, new
/// ones refused) or freeze (connections stay open and nothing more passes: a black-holed network).
pub struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Proxy::start_on(listener)
    }

    /// A proxy accepting on `listener` (which may be bound in another network namespace).
    pub fn start_on(listener: tokio::net::TcpListener) -> Proxy {
        let target: tokio_postgres::Config = database_url().parse().unwrap();
        let host = match &target.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("the proxy needs a TCP database URL, not {other:?}"),
        };
        let server = format!(
            "{host}:{}",
            target.get_ports().first().copied().unwrap_or(5432)
        );
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            up: Arc::new(AtomicBool::new(true)),
            frozen: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, frozen) = (proxy.up.clone(), proxy.frozen.clone());
        let connections = proxy.connections.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let (server, frozen) = (server.clone(), frozen.clone());
                let task = tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(server).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            pump(client_read, server_write, frozen.clone()),
                            pump(server_read, client_write, frozen),
                        );
                    }
                });
                connections.lock().unwrap().push(task.abort_handle());
            }
        });
        proxy
    }

    /// The database URL through this proxy.
    pub fn url(&self) -> String {
        self.url_at("127.0.0.1", None)
    }

    /// The URL through this proxy reached at `host`, naming `database` instead of the test's.
    pub fn url_at(&self, host: &str, database: Option<&str>) -> String {
        let target: tokio_postgres::Config = database_url().parse().unwrap();
        let user = target.get_user().unwrap_or("postgres");
        let database = database.or(target.get_dbname()).unwrap_or(user);
        let password = target
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        format!(
            "postgres://{user}{password}@{host}:{}/{database}",
            self.port
        )
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.connections
            .lock()
            .unwrap()
            .drain(..)
            .for_each(|c| c.abort());
    }

    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Copies one direction of a connection; once frozen, holds it open and passes nothing on.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if frozen.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The production rules with every period shortened, so that a test of running nodes sees many
/// prices within seconds.
pub fn fast_config(network: &str, keys: &[Keypair]) -> Config {
    let list = keys.iter().map(Keypair::address);
    let mut c = Config::new(network, Feed::eth_usd(), Signers::allowlist(list));
    c.price_interval_ms = 4_000;
    c.cosign_step_ms = 1_000;
    c.write_delay_ms = 1_000;
    c.heartbeat_interval_ms = 500;
    c.heartbeat_stale_ms = 2_000;
    c.writer_term_ms = 5_000;
    c.retransmit_after_ms = 3_000;
    c.min_peers = 2;
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback HTTP server answering like the three exchanges (median 3012.4517); its base URL.
pub async fn exchanges() -> String {
    serve_exchanges(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
}

/// Answers like the three exchanges on `listener`; its base URL.
pub fn serve_exchanges(listener: tokio::net::TcpListener) -> String {
    use axum::routing::get;
    let router = axum::Router::new()
        .route(
            "/v2/exchange-rates",
            get(|| async { r#"{"data":{"rates":{"USD":"3012.4517"}}}"# }),
        )
        .route(
            "/api/v3/simple/price",
            get(|| async { r#"{"ethereum":{"usd":3012.46}}"# }),
        )
        .route(
            "/0/public/Ticker",
            get(|| async { r#"{"error":[],"result":{"XETHZUSD":{"c":["3012.44","1"]}}}"# }),
        );
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

pub fn loopback(port: u16) -> libp2p::Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
}

/// Node `i` of a network on loopback: listening on `ports[i]`, knowing only node 0 (the rest is
/// found through Kademlia), asking the loopback exchanges at `exchanges`.
pub fn loopback_node(
    i: usize,
    key: &Keypair,
    config: &Config,
    ports: &[u16],
    exchanges: &str,
    http: Option<std::net::SocketAddr>,
) -> runtime::driver::Settings {
    use runtime::sources::{Source, Sources};
    let sources = Source::every(|_| exchanges.to_owned());
    runtime::driver::Settings {
        name: format!("node-{i}"),
        http,
        key: key.clone(),
        config: config.clone(),
        listen: vec![loopback(ports[i])],
        bootstrap: ports[..i.min(1)].iter().map(|&p| loopback(p)).collect(),
        sources: Sources::new(sources, std::time::Duration::from_secs(2), config.decimals)
            .with_retries(1),
        recording: None,
    }
}

/// Runs a node until the returned sender fires or is dropped.
pub fn spawn_node(
    settings: runtime::driver::Settings,
    store: Store,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        runtime::driver::run(settings, Arc::new(store), stopped)
            .await
            .unwrap();
    });
    (stop, node)
}

/// A node process with a key of its own, two other signers, loopback gossip and `flags`, logging
/// at info to a pipe; killed after 60 s at the latest, so that a test waiting for a log line that
/// never comes fails (its output ends) instead of hanging. Its data folder is returned too.
pub fn solo_node(test: &str, flags: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let lifetime = std::time::Duration::from_secs(60);
    (spawn_solo_node(&dir, flags, lifetime), dir)
}

/// [`solo_node`] on a data folder the test may have filled already (an embedded database, say),
/// killed after `lifetime` at the latest.
pub fn spawn_solo_node(
    dir: &std::path::Path,
    flags: &[&str],
    lifetime: std::time::Duration,
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let runtime = env!("CARGO_BIN_EXE_runtime");
    let keygen = Command::new(runtime)
        .args(["keygen", "--name", "solo", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let address = String::from_utf8(keygen.stdout).unwrap();
    let signers = dir.join("signers.txt");
    let others =
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf\n0x2b5ad5c4795c026514f8317c7a215e218dccd6cf\n";
    std::fs::write(&signers, format!("{address}{others}")).unwrap();
    let node = Command::new(runtime)
        .args([
            "node",
            "--name",
            "solo",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
        ])
        .arg(dir)
        .arg("--signers")
        .arg(&signers)
        .args(flags)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    kill_after(&node, lifetime);
    node
}

/// Kills the node after `after`: its output then ends.
pub fn kill_after(node: &std::process::Child, after: std::time::Duration) {
    let pid = nix::unistd::Pid::from_raw(node.id() as i32);
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    });
}

/// Runs `runtime replay` on a flight recording with `flags`, as an operator would: whether it
/// succeeded, and what it printed (stdout, then stderr).
pub fn replay(file: &std::path::Path, flags: &[String]) -> (bool, String) {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .arg("replay")
        .arg(file)
        .args(flags)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    (run.status.success(), said)
}
