//! A deployment of node processes in namespaces, ready to start: a fresh database of its own
//! reached through a relay in the hub, exchange-shaped prices served there, keys made by
//! `runtime keygen`, one signer list, and the flags each node runs with.

use std::path::PathBuf;

use clap::Parser;

use crate::lab::{self, Lab};
use crate::nodes::{self, History, Line, Node};
use crate::{audit, common};

pub const NETWORK: &str = "faults";
pub const QUORUM: usize = 3;
pub const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// Nodes each node bootstraps from (the first ones, itself excepted); Kademlia finds the rest.
const BOOTSTRAP: usize = 4;

/// Declared so that the processes stop before their namespaces go.
pub struct Testbed {
    pub nodes: Vec<Node>,
    pub history: History,
    pub signers: Vec<String>,
    /// README's liveness bound for the flags the nodes run with.
    pub bound_ms: u64,
    /// libfaketime's offset for the node whose wall clock steps ("+0", "-15s", ...).
    pub clock_file: PathBuf,
    pub lab: Lab,
    client: tokio_postgres::Client,
    _relay: common::Proxy,
    pub tokio: tokio::runtime::Runtime,
    dir: PathBuf,
    /// This run's own database on the test's PostgreSQL.
    database: String,
}

impl Testbed {
    /// `count` nodes running with `timing` flags; node `stepped`, if any, under libfaketime.
    pub fn new(count: usize, timing: &[&str], stepped: Option<usize>) -> Testbed {
        if stepped.is_some() && !std::path::Path::new(FAKETIME).exists() {
            panic!("{FAKETIME} is missing: install Debian's faketime package (a clock steps)");
        }
        let lab = Lab::create(count);
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let database = format!("oracle_faults_{}", std::process::id());
        let (client, relay, exchanges) = tokio.block_on(async {
            let client = fresh_database(&database).await;
            let relay = common::Proxy::start_on(listen(&lab, lab::DATABASE_PORT));
            let exchanges = common::serve_exchanges(listen(&lab, lab::EXCHANGES_PORT));
            (client, relay, exchanges)
        });

        let dir = std::env::temp_dir().join(format!("oracle-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data_dir = |i: usize| dir.join(format!("n{i}"));
        let signers: Vec<String> = (0..count)
            .map(|i| nodes::keygen(&format!("n{i}"), &data_dir(i)))
            .collect();
        let signer_file = dir.join("signers.txt");
        std::fs::write(&signer_file, signers.join("\n")).unwrap();
        let clock_file = dir.join("clock");
        std::fs::write(&clock_file, "+0").unwrap();
        let gossip = |i: usize| format!("/ip4/{}/tcp/{}", lab::address(i), lab::GOSSIP_PORT);
        let arguments = |i: usize| -> Vec<String> {
            let bootstrap: Vec<String> = (0..count.min(BOOTSTRAP + 1))
                .filter(|&j| j != i)
                .take(BOOTSTRAP)
                .map(gossip)
                .collect();
            let mut a: Vec<String> = vec![
                "node".into(),
                format!("--name=n{i}"),
                format!("--data-dir={}", data_dir(i).display()),
                format!("--signers={}", signer_file.display()),
                format!("--network={NETWORK}"),
                format!("--quorum={QUORUM}"),
                format!("--database-url={}", relay.url_at(lab::HUB, Some(&database))),
                format!("--listen={}", gossip(i)),
                format!("--bootstrap={}", bootstrap.join(",")),
                format!("--http={}:9100", lab::address(i)),
                format!("--coinbase-url={exchanges}"),
                format!("--coingecko-url={exchanges}"),
                format!("--kraken-url={exchanges}"),
            ];
            a.extend(timing.iter().map(|t| t.to_string()));
            a
        };
        let bound_ms = {
            let command = std::iter::once("runtime".to_owned()).chain(arguments(0));
            let cli = runtime::cli::Cli::try_parse_from(command).unwrap();
            let Some(runtime::cli::Command::Node(args)) = cli.command else {
                unreachable!("a node command")
            };
            args.config().unwrap().liveness_bound_ms()
        };
        let nodes = (0..count)
            .map(|i| {
                let mut environment = Vec::new();
                if Some(i) == stepped {
                    // Only the wall clock steps, as NTP steps it; the monotonic clock runs on.
                    environment = [
                        ("LD_PRELOAD", FAKETIME),
                        ("FAKETIME_TIMESTAMP_FILE", &clock_file.display().to_string()),
                        ("FAKETIME_CACHE_DURATION", "1"),
                        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .into();
                }
                Node::new(i, lab.node(i), arguments(i), environment)
            })
            .collect();
        Testbed {
            nodes,
            history: History::default(),
            signers,
            bound_ms,
            clock_file,
            lab,
            client,
            _relay: relay,
            tokio,
            dir,
            database,
        }
    }

    pub fn start_all(&mut self) {
        for node in &mut self.nodes {
            node.start(&self.history);
        }
    }

    /// Every stored row, as the database has it now.
    pub fn rows(&self) -> Vec<audit::Row> {
        self.tokio.block_on(audit::rows(&self.client))
    }

    /// When the first price was stored, waiting until `until` at most.
    pub fn first_stored(&self, until: u64) -> Option<u64> {
        while nodes::now_ms() < until {
            let first = self.tokio.block_on(self.client.query_opt(
                "SELECT (extract(epoch FROM min(inserted_at)) * 1000)::bigint FROM prices",
                &[],
            ));
            if let Ok(Some(row)) = first
                && let Some(at) = row.get::<_, Option<i64>>(0)
            {
                return Some(at as u64);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        None
    }

    pub fn lines(&self) -> Vec<Line> {
        self.history.lock().unwrap().clone()
    }

    /// Removes the keys and data folders; kept when a run failed, for a look.
    pub fn remove_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Testbed {
    /// A passing run leaves no database behind; a failing one keeps it to be looked at.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        self.tokio.block_on(async {
            let admin = common::connect(common::database_url().parse().unwrap()).await;
            if let Err(error) = admin.batch_execute(&drop).await {
                eprintln!("{drop}: {error}");
            }
        });
    }
}

/// A listener on the hub's bridge address, for the nodes to reach.
fn listen(lab: &Lab, port: u16) -> tokio::net::TcpListener {
    let address = format!("{}:{port}", lab::HUB).parse().unwrap();
    tokio::net::TcpListener::from_std(lab.bind(&lab.hub(), address)).unwrap()
}

/// An empty database of this run's own on the test's PostgreSQL; a client of it.
async fn fresh_database(name: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = common::database_url().parse().unwrap();
    let admin = common::connect(config.clone()).await;
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
    config.dbname(name);
    common::connect(config).await
}
