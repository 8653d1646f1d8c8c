//! What the clients of a live node process see: its OpenAPI contract, held by schemathesis (no
//! 5xx, every answer as documented), and its status page in headless Chromium, whose chart must
//! show the stored prices of the last 24 hours with their signer counts.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use common::{keys, price};
use runtime::store::Store;

/// A healthy node process on loopback whose embedded database holds prices observed over the last
/// 30 hours, hourly, with 3 or 4 signers; its HTTP address and the prices' (id, signers) of the
/// last 24 hours. The newest is a minute old, so `/prices/latest` answers one.
async fn node_with_prices(test: &str) -> (Child, SocketAddr, Vec<(String, usize)>) {
    let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = runtime::driver::now_ms();
    let keys = keys();
    let mut recent = Vec::new();
    {
        let store = Store::sqlite(&dir.join("oracle.sqlite")).await.unwrap();
        for hour in 0..30u64 {
            let signers = 3 + (hour % 2) as usize;
            let at = now - 60_000 - hour * 3_600_000;
            let row = price(
                &keys,
                at,
                301_245_170_000 + u128::from(hour) * 7_000_000,
                signers,
            );
            store.insert(&row, 3).await.unwrap();
            if hour < 24 {
                recent.push((row.message.body.id.to_string(), signers));
            }
        }
    }
    let exchanges = common::exchanges().await;
    let port = common::free_port();
    let flags = [
        format!("--http=127.0.0.1:{port}"),
        "--min-peers=0".to_owned(),
        format!("--coinbase-url={exchanges}"),
        format!("--coingecko-url={exchanges}"),
        format!("--kraken-url={exchanges}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut node = common::spawn_solo_node(&dir, &flags, Duration::from_secs(300));
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    // Healthy once it has asked its sources.
    for _ in 0..100 {
        let health = reqwest::get(format!("http://{address}/health")).await;
        if health.is_ok_and(|h| h.status() == 200) {
            return (node, address, recent);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(&mut node);
    panic!("the node at {address} did not become healthy within 10 s");
}

fn stop(node: &mut Child) {
    let _ = node.kill();
    let _ = node.wait();
}

/// A program the test needs, or a failure that says how to install it.
fn program(name: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| panic!("this test runs `{name}`, which is not installed: {install}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_the_live_node_as_its_contract_says() {
    let installed = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "this test runs schemathesis, which is not installed: python3 -m pip install schemathesis"
    );
    let (mut node, address, _) = node_with_prices("contract").await;
    let contract = format!("http://{address}/openapi.json");
    let outcome = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            // It keeps a cache of what it found where it runs: not in the source tree.
            .current_dir(std::env::temp_dir())
            .args([
                "-m",
                "schemathesis.cli",
                "run",
                &contract,
                "--checks",
                "all",
            ])
            // An event stream never ends: a request for it would only time out.
            .args(["--exclude-path", "/prices/stream"])
            .args(["--max-examples", "40", "--seed", "1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop(&mut node);
    let report = String::from_utf8_lossy(&outcome.stdout);
    assert!(
        outcome.status.success(),
        "schemathesis found the node breaking its contract:\n{report}\n{}",
        String::from_utf8_lossy(&outcome.stderr)
    );
    println!("{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_charts_the_stored_prices_in_a_browser() {
    let chromium = program("chromium", "apt-get install chromium");
    let (mut node, address, recent) = node_with_prices("page").await;
    let page = format!("http://{address}/");
    let dom = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--virtual-time-budget=10000",
                "--dump-dom",
                &page,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop(&mut node);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains(r#"data-loaded="true""#), "{dom}");
    let charted: Vec<(String, usize)> = dom
        .split("<circle ")
        .skip(1)
        .filter(|circle| circle.contains(r#"class="price""#))
        .map(|circle| {
            let attribute = |name: &str| {
                let start = circle.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                circle[start..start + circle[start..].find('"').unwrap()].to_owned()
            };
            (
                attribute("data-id"),
                attribute("data-signers").parse().unwrap(),
            )
        })
        .collect();
    let mut expected = recent;
    expected.sort();
    let mut charted_sorted = charted.clone();
    charted_sorted.sort();
    assert_eq!(charted_sorted, expected, "the chart: {charted:?}");
    // The newest price, in the feed's quote currency.
    assert!(
        dom.contains(">3012.45170000 USD</span>"),
        "the current price is shown: {dom}"
    );
}
