//! `cargo run -p runtime`: a local network of nodes on this machine. `cargo run -p runtime -- node
//! ...`: one production node. `--help` says the rest.

use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use runtime::cli::{Cli, Command, LogFormat, NodeArgs, SourceUrls, VerifyArgs, write_signers};
use runtime::driver::{self, Settings};
use runtime::key;
use runtime::sources::Sources;
use runtime::store::Store;
use tokio::sync::watch;

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env file is normal; flags and the environment still apply.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,libp2p=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        // Colour codes only where a person reads them: not in files, pipes or journald.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Some(Command::Node(args)) => node(*args).await,
        Some(Command::Verify(args)) => verify(args).await,
        Some(Command::Replay(args)) => runtime::replay::run(&args).map_err(Into::into),
        Some(Command::Keygen { name, data_dir }) => keygen(&name, &data_dir),
        None => devnet(cli.nodes, &cli.devnet_dir, &cli.source_urls).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves once the process is asked to stop: Ctrl-C (SIGINT), or SIGTERM as `docker stop` and
/// systemd send it. Both stop the same way: writes in flight are finished first. The handlers are
/// installed when this is called, not when the future is first polled: a signal in between would
/// kill the process on the spot (seen in CI, a SIGTERM sent once the node logged "listening").
fn stop_signal(stop: watch::Sender<bool>) -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = signal(SignalKind::interrupt()).and_then(|interrupt| {
        let terminate = signal(SignalKind::terminate())?;
        Ok((interrupt, terminate))
    });
    async move {
        let signal = match handlers {
            Ok((mut interrupt, mut terminate)) => tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGINT or SIGTERM; waiting on Ctrl-C alone");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        };
        tracing::info!(signal, "stopping: finishing writes in flight");
        let _ = stop.send(true);
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn node(args: NodeArgs) -> Result<(), Error> {
    let (key, created) = key::load_or_generate(&args.data_dir, &args.name)?;
    if created {
        println!(
            "generated a new key for {}: address {} (add it to every node's signer list)",
            args.name,
            key.address()
        );
    }
    let config = args.config()?;
    let store = match &args.database_url {
        Some(url) => postgres_once_reachable(url).await?,
        None => Store::sqlite(&args.data_dir.join("oracle.sqlite")).await?,
    }
    .with_timeout(Duration::from_millis(config.database_timeout_ms));
    let settings = Settings {
        name: args.name.clone(),
        http: Some(args.http),
        sources: Sources::new(
            args.source_urls.sources(),
            args.source_timeout,
            config.decimals,
        ),
        key,
        config,
        listen: args.listen.clone(),
        bootstrap: args.bootstrap.clone(),
        recording: Some((args.data_dir.join("recordings"), args.recording_limit)),
    };
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(stop_signal(stop));
    driver::run(settings, Arc::new(store), stopped(stop_rx)).await?;
    Ok(())
}

/// The shared database, waited for while it cannot be reached (a node started before its
/// database, or during an outage, comes up with it); an error the database answers (no such
/// database, authentication) ends the start with the database's own words.
async fn postgres_once_reachable(url: &str) -> Result<Store, Error> {
    const AGAIN_AFTER: Duration = Duration::from_secs(5);
    loop {
        match Store::postgres(url, None).await {
            Ok(store) => return Ok(store),
            Err(error) if error.is_unreachable() => {
                tracing::warn!(%error, "the database at --database-url does not answer yet; trying again in 5 s");
                tokio::time::sleep(AGAIN_AFTER).await;
            }
            Err(error) => {
                return Err(format!("cannot use the database at --database-url: {error}").into());
            }
        }
    }
}

/// What each local network node's flight recorder may keep.
const DEVNET_RECORDING_LIMIT: u64 = 16 << 20;

/// `nodes` nodes on loopback sharing an embedded database under `dir`, with live price sources.
async fn devnet(nodes: usize, dir: &Path, source_urls: &SourceUrls) -> Result<(), Error> {
    if nodes < 3 {
        return Err(format!("--nodes {nodes}: a quorum of 3 needs at least 3 nodes").into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut keys = Vec::new();
    for i in 0..nodes {
        keys.push(key::load_or_generate(dir, &format!("node-{i}"))?.0);
    }
    let signers: Vec<_> = keys.iter().map(|k| k.address()).collect();
    let signer_file = dir.join("signers.txt");
    write_signers(&signer_file, &signers)?;
    let database = dir.join("oracle.sqlite");
    println!(
        "a local network of {nodes} nodes: keys, {} and {} in {}; /health and /metrics of node i \
         on 127.0.0.1:910i; Ctrl-C stops every node",
        signer_file.display(),
        database.display(),
        dir.display()
    );
    let ports = (0..nodes)
        .map(|_| Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()))
        .collect::<std::io::Result<Vec<u16>>>()?;
    let address = |port: u16| {
        format!("/ip4/127.0.0.1/tcp/{port}")
            .parse()
            .expect("a multiaddr")
    };
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(stop_signal(stop));
    let mut running = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let mut config = NodeArgs::devnet_config(signers.clone());
        config.min_peers = config.min_peers.min(nodes - 1);
        let sources = source_urls.sources();
        let settings = Settings {
            name: format!("node-{i}"),
            http: Some(([127, 0, 0, 1], 9100 + i as u16).into()),
            sources: Sources::new(sources, Duration::from_secs(5), config.decimals),
            key,
            config,
            listen: vec![address(ports[i])],
            bootstrap: ports[..i].iter().map(|&p| address(p)).collect(),
            recording: Some((dir.join("recordings"), DEVNET_RECORDING_LIMIT)),
        };
        let store = Arc::new(Store::sqlite(&database).await?);
        let stop = stopped(stop_rx.clone());
        running.push(tokio::spawn(driver::run(settings, store, stop)));
    }
    for node in running {
        node.await??;
    }
    Ok(())
}

async fn verify(args: VerifyArgs) -> Result<(), Error> {
    let config = args.deployment.config()?;
    let embedded = args.data_dir.join("oracle.sqlite");
    let store = Store::read_only(args.database_url.as_deref(), &embedded).await?;
    let summary =
        runtime::verify::verify(&store, &config, args.since.unwrap_or(0), args.id).await?;
    for failure in &summary.failures {
        println!("FAILED {}: {}", failure.id, failure.reason);
    }
    println!(
        "{} rows checked against network {} ({} signers, quorum {}): {} failed",
        summary.checked,
        hex::encode(config.network_id()),
        args.deployment.signers.display(),
        config.quorum,
        summary.failures.len()
    );
    if summary.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} rows failed verification", summary.failures.len()).into())
    }
}

fn keygen(name: &str, data_dir: &Path) -> Result<(), Error> {
    let (key, created) = key::load_or_generate(data_dir, name)?;
    let path = key::path(data_dir, name)?;
    let what = if created {
        "wrote"
    } else {
        "kept the existing"
    };
    eprintln!("{what} key file {}", path.display());
    println!("{}", key.address());
    Ok(())
}
