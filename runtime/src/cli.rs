//! The command line. Every flag of `node` also reads an environment variable and a `.env` file in
//! the working directory; `--help` documents each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;
use protocol::{Address, Config, Feed, Signers};

use crate::sources::{Exchange, Source};

#[derive(Debug, Parser)]
#[command(
    name = "runtime",
    about = "A decentralized ETH/USD price oracle node. Without a command: a local network of nodes on this machine."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Nodes in the local network (without a command).
    #[arg(long, default_value_t = 4, env = "ORACLE_DEVNET_NODES")]
    pub nodes: usize,
    /// Folder for the local network's keys, signer list and embedded database.
    #[arg(long, default_value = "devnet", env = "ORACLE_DEVNET_DIR")]
    pub devnet_dir: PathBuf,
    /// The local network's price sources (a node's are flags of `node`).
    #[command(flatten)]
    pub source_urls: SourceUrls,
    /// Log lines as text (coloured only on a terminal) or as one JSON object per line.
    #[arg(long, global = true, env = "ORACLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one production node.
    Node(Box<NodeArgs>),
    /// Checks stored prices against the signer list and the network id, without trusting the
    /// nodes that wrote them. Exits non-zero if any row fails.
    Verify(VerifyArgs),
    /// Replays a node's flight recording (<data-dir>/recordings/<name>.journal) on a fresh node
    /// and checks that it acts exactly as recorded; exits non-zero at the first divergence.
    Replay(ReplayArgs),
    /// Writes a node's key file (if it does not exist yet) and prints its address, for the
    /// signer list.
    Keygen {
        #[arg(long, env = "ORACLE_NAME")]
        name: String,
        #[arg(long, env = "ORACLE_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

/// What every node of one deployment shares: it makes the network id.
#[derive(Debug, Args)]
pub struct Deployment {
    /// The signer allowlist: one 0x address per line; blank lines and lines from '#' are ignored.
    #[arg(long, env = "ORACLE_SIGNERS")]
    pub signers: PathBuf,
    /// Deployment name: part of the network id every signature commits to.
    #[arg(long, env = "ORACLE_NETWORK", default_value = "mainnet")]
    pub network: String,
    /// Distinct valid signatures a price needs before it is stored.
    #[arg(long, env = "ORACLE_QUORUM", default_value_t = 3)]
    pub quorum: usize,
}

impl Deployment {
    /// The protocol's production config for this deployment (checked by `Node::new`).
    pub fn config(&self) -> Result<Config, SignersError> {
        let signers = read_signers(&self.signers)?;
        let mut config = Config::new(&self.network, Feed::eth_usd(), Signers::allowlist(signers));
        config.quorum = self.quorum;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub deployment: Deployment,
    /// PostgreSQL URL; without it, the embedded database in --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, env = "ORACLE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Only prices observed from this moment on: RFC 3339 (2026-11-21T10:00:00Z) or unix ms.
    #[arg(long, value_parser = parse_moment)]
    pub since: Option<u64>,
    /// Only this price id.
    #[arg(long, value_parser = parse_price_id)]
    pub id: Option<protocol::PriceId>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording: <name>.journal, or the <name>.journal.old it rotated out.
    pub file: PathBuf,
    /// Print this price's story at the node: every event and action about it, with times.
    #[arg(long, value_parser = parse_price_id)]
    pub id: Option<protocol::PriceId>,
    /// Stop at this moment (by the node's clock): RFC 3339 or unix ms.
    #[arg(long, value_parser = parse_moment)]
    pub until: Option<u64>,
}

/// A size in bytes: a number with an optional unit, B, KiB, MiB or GiB ("64MiB").
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: use a number of bytes with B, KiB, MiB or GiB, like 64MiB"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            format!("{text:?}: use a number of bytes with B, KiB, MiB or GiB, like 64MiB")
        })
}

/// The flight recorder's bound: 0 (off) or enough for a file to hold a snapshot of the node and
/// the events after it, at least 1 MiB.
fn parse_recording_limit(text: &str) -> Result<u64, String> {
    let limit = parse_size(text)?;
    if limit != 0 && limit < 1 << 20 {
        return Err(format!(
            "{text:?} is too small to hold a node's snapshot and the events after it: use 0 (off) \
             or at least 1MiB"
        ));
    }
    Ok(limit)
}

/// A moment as RFC 3339 or unix milliseconds.
pub fn parse_moment(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        // Databases keep moments as signed 64-bit milliseconds: a larger one would wrap around.
        return i64::try_from(ms).map(|_| ms).map_err(|_| {
            format!(
                "{ms} is past the last moment a database can hold ({})",
                i64::MAX
            )
        });
    }
    let moment = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("{e}: use RFC 3339 like 2026-11-21T10:00:00Z, or unix milliseconds")
    })?;
    moment
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| "a moment before 1970".to_owned())
}

fn parse_price_id(text: &str) -> Result<protocol::PriceId, String> {
    crate::store::parse_id(text).ok_or_else(|| format!("{text:?} is not a price id (a UUID)"))
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's name: its key is <data-dir>/<name>.priv, generated on first start.
    #[arg(long, env = "ORACLE_NAME")]
    pub name: String,
    /// Folder for the key and, without a database URL, the embedded database.
    #[arg(long, env = "ORACLE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Address to listen on, as a multiaddr (repeatable).
    #[arg(
        long,
        env = "ORACLE_LISTEN",
        value_delimiter = ',',
        default_value = "/ip4/0.0.0.0/tcp/4001"
    )]
    pub listen: Vec<Multiaddr>,
    /// A peer to join through, as a multiaddr (repeatable).
    #[arg(long, env = "ORACLE_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<Multiaddr>,
    /// Where to serve /health and /metrics.
    #[arg(long, env = "ORACLE_HTTP", default_value = "127.0.0.1:9100")]
    pub http: std::net::SocketAddr,
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/oracle. Without it, an embedded
    /// SQLite database in the data folder.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub deployment: Deployment,
    /// How often this node observes and publishes, e.g. 10m, 30s.
    #[arg(long, env = "ORACLE_PRICE_INTERVAL", default_value_t = default(|c| c.price_interval_ms))]
    pub price_interval: humantime::Duration,
    /// How often this node observes between publications, to publish early on a move.
    #[arg(long, env = "ORACLE_OBSERVE_INTERVAL", default_value_t = default(|c| c.observe_interval_ms))]
    pub observe_interval: humantime::Duration,
    /// Publish at once when the observed price is this many basis points from this node's last
    /// publication (0: only every --price-interval).
    #[arg(long, env = "ORACLE_DEVIATION_BPS", default_value_t = production().deviation_bps)]
    pub deviation_bps: u32,
    /// Time after a price's last new signature before it is written.
    #[arg(long, env = "ORACLE_WRITE_DELAY", default_value_t = default(|c| c.write_delay_ms))]
    pub write_delay: humantime::Duration,
    /// Peers needed before this node publishes its own prices.
    #[arg(long, env = "ORACLE_MIN_PEERS", default_value_t = 3)]
    pub min_peers: usize,
    /// Price sources that must answer for an observation to count.
    #[arg(long, env = "ORACLE_MIN_SOURCES", default_value_t = 2)]
    pub min_sources: usize,
    /// How long any database call may take before it counts as failed (a write is then retried).
    #[arg(long, env = "ORACLE_DATABASE_TIMEOUT", default_value_t = default(|c| c.database_timeout_ms))]
    pub database_timeout: humantime::Duration,
    /// Per-request timeout of a price source.
    #[arg(long, env = "ORACLE_SOURCE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub source_timeout: Duration,
    #[command(flatten)]
    pub source_urls: SourceUrls,
    /// Bytes the flight recorder may keep in <data-dir>/recordings (everything the node is fed,
    /// for `runtime replay`); 0 turns it off.
    #[arg(long, env = "ORACLE_RECORDING_LIMIT", default_value = "64MiB", value_parser = parse_recording_limit)]
    pub recording_limit: u64,
    #[command(flatten)]
    pub timing: Timing,
}

/// The periods of the writer election, co-signing and retransmission. Every node of a deployment
/// should use the same; the defaults suit a 10-minute price interval, and tests shorten them.
#[derive(Debug, Args)]
#[command(next_help_heading = "Timing")]
pub struct Timing {
    /// How often the node writes its heartbeat.
    #[arg(long, env = "ORACLE_HEARTBEAT_INTERVAL", default_value_t = default(|c| c.heartbeat_interval_ms))]
    pub heartbeat_interval: humantime::Duration,
    /// A heartbeat older than this never makes its node the writer.
    #[arg(long, env = "ORACLE_HEARTBEAT_STALE", default_value_t = default(|c| c.heartbeat_stale_ms))]
    pub heartbeat_stale: humantime::Duration,
    /// The writer is chosen anew each term.
    #[arg(long, env = "ORACLE_WRITER_TERM", default_value_t = default(|c| c.writer_term_ms))]
    pub writer_term: humantime::Duration,
    /// Each backup writer writes a ready price not seen stored this much after the one before it.
    #[arg(long, env = "ORACLE_BACKUP_STEP", default_value_t = default(|c| c.backup_step_ms))]
    pub backup_step: humantime::Duration,
    /// Co-signers asked next when a price has no quorum after this long.
    #[arg(long, env = "ORACLE_COSIGN_STEP", default_value_t = default(|c| c.cosign_step_ms))]
    pub cosign_step: humantime::Duration,
    /// A signer of a price not yet seen stored sends what it holds again after this long.
    #[arg(long, env = "ORACLE_RETRANSMIT_AFTER", default_value_t = default(|c| c.retransmit_after_ms))]
    pub retransmit_after: humantime::Duration,
}

/// The protocol's production settings, where every flag's default comes from, so each lives once.
fn production() -> Config {
    Config::new("", Feed::eth_usd(), Signers::Open)
}

/// A duration flag's default: the protocol's production setting.
fn default(setting: fn(&Config) -> u64) -> humantime::Duration {
    Duration::from_millis(setting(&production())).into()
}

fn ms(duration: humantime::Duration) -> u64 {
    Duration::from(duration).as_millis() as u64
}

#[derive(Debug, thiserror::Error)]
pub enum SignersError {
    #[error("cannot read the signer list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}, line {line}: {text:?} is not an address ({why}); write one 0x address per line"
    )]
    Line {
        path: PathBuf,
        line: usize,
        text: String,
        why: String,
    },
    #[error("the signer list {0} names nobody")]
    Empty(PathBuf),
}

/// Reads an allowlist file: one 0x address per line; blank lines and `#` comments are ignored.
pub fn read_signers(path: &Path) -> Result<Vec<Address>, SignersError> {
    let text = std::fs::read_to_string(path).map_err(|source| SignersError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut signers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let address = Address::parse(content).map_err(|why| SignersError::Line {
            path: path.to_owned(),
            line: index + 1,
            text: content.to_owned(),
            why: why.to_string(),
        })?;
        signers.push(address);
    }
    if signers.is_empty() {
        return Err(SignersError::Empty(path.to_owned()));
    }
    Ok(signers)
}

/// Writes an allowlist file for these signers.
pub fn write_signers(path: &Path, signers: &[Address]) -> std::io::Result<()> {
    let mut text = String::from("# Signer allowlist: one address per line.\n");
    signers
        .iter()
        .for_each(|s| text.push_str(&format!("{s}\n")));
    std::fs::write(path, text)
}

impl NodeArgs {
    /// The protocol's config from the flags (checked by `Node::new`).
    pub fn config(&self) -> Result<Config, SignersError> {
        let mut config = self.deployment.config()?;
        config.price_interval_ms = ms(self.price_interval);
        config.observe_interval_ms = ms(self.observe_interval);
        config.deviation_bps = self.deviation_bps;
        config.write_delay_ms = ms(self.write_delay);
        config.min_peers = self.min_peers;
        config.min_sources = self.min_sources;
        config.database_timeout_ms = ms(self.database_timeout);
        let timing = &self.timing;
        config.heartbeat_interval_ms = ms(timing.heartbeat_interval);
        config.heartbeat_stale_ms = ms(timing.heartbeat_stale);
        config.writer_term_ms = ms(timing.writer_term);
        config.backup_step_ms = ms(timing.backup_step);
        config.cosign_step_ms = ms(timing.cosign_step);
        config.retransmit_after_ms = ms(timing.retransmit_after);
        Ok(config)
    }

    /// The local network's settings: the production rules, faster, so prices appear within a
    /// minute.
    pub fn devnet_config(signers: Vec<Address>) -> Config {
        let mut config = Config::new("devnet", Feed::eth_usd(), Signers::allowlist(signers));
        config.price_interval_ms = 30_000;
        config.write_delay_ms = 5_000;
        config
    }
}

/// Where the exchanges are reached: their public APIs, or proxies and mirrors of them.
#[derive(Debug, Args)]
pub struct SourceUrls {
    #[arg(long, env = "ORACLE_COINBASE_URL", default_value = Exchange::Coinbase.default_base_url())]
    pub coinbase_url: String,
    #[arg(long, env = "ORACLE_COINGECKO_URL", default_value = Exchange::CoinGecko.default_base_url())]
    pub coingecko_url: String,
    #[arg(long, env = "ORACLE_KRAKEN_URL", default_value = Exchange::Kraken.default_base_url())]
    pub kraken_url: String,
}

impl SourceUrls {
    pub fn sources(&self) -> Vec<Source> {
        Source::every(|exchange| {
            match exchange {
                Exchange::Coinbase => &self.coinbase_url,
                Exchange::CoinGecko => &self.coingecko_url,
                Exchange::Kraken => &self.kraken_url,
            }
            .clone()
        })
    }
}
