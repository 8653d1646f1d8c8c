//! Bad input from an operator gets an error that says what to fix, never a panic.

mod common;

use std::time::Duration;

use clap::Parser;
use runtime::cli::{Cli, SignersError, read_signers};
use runtime::store::Store;

#[test]
fn a_bad_multiaddr_is_named() {
    let error = Cli::try_parse_from([
        "runtime",
        "node",
        "--name",
        "a",
        "--signers",
        "s.txt",
        "--bootstrap",
        "127.0.0.1:4001",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("invalid value '127.0.0.1:4001' for '--bootstrap"),
        "{error}"
    );
}

#[test]
fn a_recording_limit_is_a_size_the_recorder_can_keep() {
    let parse = |limit: &str| {
        let args = ["runtime", "node", "--name", "a", "--signers", "s.txt"];
        Cli::try_parse_from(args.into_iter().chain(["--recording-limit", limit]))
    };
    for (limit, bytes) in [
        ("64MiB", 64 << 20),
        ("0", 0),
        ("2GiB", 2 << 30),
        ("1048576", 1 << 20),
    ] {
        let cli = parse(limit).unwrap_or_else(|e| panic!("{limit}: {e}"));
        let Some(runtime::cli::Command::Node(node)) = cli.command else {
            panic!("a node command")
        };
        assert_eq!(node.recording_limit, bytes, "{limit}");
    }
    for (limit, says) in [
        ("64MB", "use a number of bytes with B, KiB, MiB or GiB"),
        ("lots", "use a number of bytes with B, KiB, MiB or GiB"),
        ("99999999999GiB", "use a number of bytes"),
        ("512KiB", "use 0 (off) or at least 1MiB"),
    ] {
        let error = parse(limit).unwrap_err().to_string();
        assert!(error.contains(says), "{limit}: {error}");
    }
}

#[test]
fn a_bad_signer_list_says_which_line() {
    let dir = std::env::temp_dir().join(format!("signers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signers.txt");
    std::fs::write(
        &path,
        "# ops team\n0x7e5f4552091a69125d5dfcb7b8c2659029395bdf\n\n0x1234 # short\n",
    )
    .unwrap();
    let error = read_signers(&path).unwrap_err();
    assert!(
        matches!(error, SignersError::Line { line: 4, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("line 4: \"0x1234\""), "{error}");

    std::fs::write(&path, "# nobody yet\n").unwrap();
    assert!(matches!(read_signers(&path), Err(SignersError::Empty(_))));
    std::fs::write(
        &path,
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf # node 1\n",
    )
    .unwrap();
    assert_eq!(read_signers(&path).unwrap().len(), 1);
    let missing = read_signers(&dir.join("missing.txt")).unwrap_err();
    assert!(missing.to_string().contains("missing.txt"), "{missing}");
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let result = tokio::time::timeout(Duration::from_secs(10), Store::postgres(&url, None)).await;
    let error = result
        .expect("gave up within its timeout")
        .err()
        .expect("an error");
    assert!(error.to_string().contains("PostgreSQL"), "{error}");
    assert!(error.to_string().contains("refused"), "says why: {error}");
}

#[tokio::test]
async fn the_database_s_own_message_is_shown() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (server, _) = url.rsplit_once('/').expect("a URL with a database name");
    let missing = format!("{server}/no_such_database_here");
    let error = Store::postgres(&missing, None)
        .await
        .err()
        .expect("an error");
    assert!(
        error.to_string().contains("does not exist"),
        "the server's words, not \"db error\": {error}"
    );
}

#[test]
fn keygen_prints_the_address_and_never_replaces_a_key() {
    let dir = std::env::temp_dir().join(format!("keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keygen = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(["keygen", "--name", "alpha", "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let first = keygen();
    assert!(first.status.success());
    let address = String::from_utf8(first.stdout).unwrap();
    assert!(
        protocol::Address::parse(address.trim()).is_ok(),
        "{address}"
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("wrote key file"));
    let second = keygen();
    assert_eq!(String::from_utf8(second.stdout).unwrap(), address);
    assert!(String::from_utf8_lossy(&second.stderr).contains("kept the existing key file"));
}

#[test]
fn sigterm_stops_a_node_as_ctrl_c_does() {
    use std::io::{BufRead, BufReader};
    let (mut node, dir) = common::solo_node("sigterm", &["--http=127.0.0.1:0"]);
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let listening = line.contains("listening");
        log.push(line);
        if listening {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(node.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    log.extend(lines.map_while(Result::ok));
    let exit = node.wait().unwrap();
    let log = log.join("\n");
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopping"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn node_flags_default_to_the_protocol_s_production_settings() {
    use clap::Parser;
    use runtime::cli::{Cli, Command};
    let dir = std::env::temp_dir().join(format!("defaults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signers = dir.join("signers.txt");
    let addresses = [
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
        "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf",
        "0x6813eb9362372eef6200f3b1dbc3f819671cba69",
    ];
    std::fs::write(&signers, addresses.join("\n")).unwrap();
    let cli = Cli::try_parse_from([
        "runtime",
        "node",
        "--name=a",
        &format!("--signers={}", signers.display()),
    ])
    .unwrap();
    let Some(Command::Node(args)) = cli.command else {
        panic!("a node command")
    };
    let list = addresses
        .iter()
        .map(|a| protocol::Address::parse(a).unwrap());
    let production = protocol::Config::new(
        "mainnet",
        protocol::Feed::eth_usd(),
        protocol::Signers::allowlist(list),
    );
    assert_eq!(args.config().unwrap(), production);
}

/// Started while its database is down, a node waits and says so, and comes up with the database.
#[test]
fn a_node_started_before_its_database_waits_for_it() {
    use std::io::{BufRead, BufReader};
    let port = common::free_port();
    let database = format!("--database-url=postgres://postgres@127.0.0.1:{port}/test");
    let (mut node, dir) = common::solo_node("waits", &["--http=127.0.0.1:0", &database]);
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut log = Vec::new();
    let mut wait_for = |text: &str| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            let found = line.contains(text);
            log.push(line);
            if found {
                return;
            }
        }
        panic!("the node ended before logging {text:?}: {}", log.join("\n"));
    };
    wait_for("does not answer yet");
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let _proxy = tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        common::Proxy::start_on(listener)
    });
    wait_for("listening");
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node that cannot reach its price sources says so at start, with each cause and what to do,
/// and `/health` is red while too few answer.
#[test]
fn unreachable_price_sources_are_named_at_start_and_make_health_red() {
    use std::io::{BufRead, BufReader};
    let (http, refusing) = (common::free_port(), common::free_port());
    let nowhere = format!("http://127.0.0.1:{refusing}");
    let flags = [
        format!("--http=127.0.0.1:{http}"),
        "--min-peers=0".to_owned(),
        "--source-timeout=1s".to_owned(),
        format!("--coinbase-url={nowhere}"),
        format!("--coingecko-url={nowhere}"),
        format!("--kraken-url={nowhere}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (mut node, dir) = common::solo_node("offline", &flags);
    let mut log = Vec::new();
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("too few price sources answer");
        log.push(line);
        if done {
            break;
        }
    }
    let log = log.join("\n");
    assert!(log.contains("--coinbase-url"), "says what to do: {log}");
    assert!(
        log.to_lowercase().contains("refused"),
        "names the cause: {log}"
    );
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let health = tokio.block_on(async {
        let url = format!("http://127.0.0.1:{http}/health");
        for _ in 0..50 {
            if let Ok(response) = reqwest::get(&url).await {
                let status = response.status().as_u16();
                let body: serde_json::Value =
                    serde_json::from_str(&response.text().await.unwrap()).unwrap();
                if body["database_reachable"] == true {
                    return (status, body);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no /health with the database read");
    });
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(health.0, 503, "{}", health.1);
    assert_eq!(health.1["sources_answered"], 0, "{}", health.1);
}
