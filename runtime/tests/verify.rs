//! `runtime verify` catches every tampering with a stored row: a changed price, a signer listed
//! twice, a signature by a foreign key. Through the library and through the command itself.

mod common;

use common::{T0, config, database_url, fresh_postgres, keys, schema};
use protocol::Keypair;
use runtime::verify::verify;

#[tokio::test]
async fn tampered_rows_are_caught_and_named() {
    let keys = keys();
    let config = config(&keys);
    let store = fresh_postgres("verify").await;
    let prices = common::store_prices(&store, &keys, 4).await;
    let clean = verify(&store, &config, 0, None).await.unwrap();
    assert_eq!((clean.checked, clean.failures.len()), (4, 0));

    let ids: Vec<String> = prices
        .iter()
        .map(|p| p.message.body.id.to_string())
        .collect();
    let outsider = protocol::testing::key(0x77);
    let digest = prices[2].message.body.digest(&config.network_id());
    let foreign = format!("0x{}", hex::encode(outsider.sign(&digest).0));
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let schema = schema("verify");
    client
        .batch_execute(&format!(
            "SET search_path TO {schema};
             UPDATE prices SET price_units = price_units + 1 WHERE id = '{}';
             UPDATE prices SET signatures = signatures || jsonb_build_array(signatures -> 0),
                               signer_count = signer_count + 1 WHERE id = '{}';
             UPDATE prices SET signatures = jsonb_set(signatures, '{{1,signature}}', to_jsonb('{foreign}'::text))
                 WHERE id = '{}';",
            ids[0], ids[1], ids[2]
        ))
        .await
        .unwrap();

    let summary = verify(&store, &config, 0, None).await.unwrap();
    assert_eq!(summary.checked, 4);
    let reasons: Vec<(&str, &str)> = summary
        .failures
        .iter()
        .map(|f| (f.id.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    // Signatures are stored in signer order: entry k is the k-th smallest signer's.
    let mut signers: Vec<_> = keys[..3].iter().map(|k| k.address()).collect();
    signers.sort();
    let signer = |k: usize| signers[k].to_string();
    assert_eq!(reasons[0].0, ids[0]);
    assert!(
        reasons[0].1.contains("does not recover"),
        "changed price: {reasons:?}"
    );
    assert_eq!(reasons[1].0, ids[1]);
    assert!(
        reasons[1]
            .1
            .contains(&format!("signer {} is listed more than once", signer(0))),
        "duplicated signer: {reasons:?}"
    );
    assert_eq!(reasons[2].0, ids[2]);
    assert!(
        reasons[2]
            .1
            .contains(&format!("the signature of {} does not recover", signer(1))),
        "foreign signature: {reasons:?}"
    );

    // The command: non-zero with every failing row named; zero for a clean row.
    let dir = std::env::temp_dir().join(format!("verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signer_file = dir.join("signers.txt");
    let list: Vec<_> = keys.iter().map(Keypair::address).collect();
    runtime::cli::write_signers(&signer_file, &list).unwrap();
    let url = format!(
        "{}?options=-c%20search_path%3D{schema}",
        database_url().split('?').next().unwrap()
    );
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(["verify", "--network", "storetest", "--database-url", &url])
            .arg("--signers")
            .arg(&signer_file)
            .args(extra)
            .output()
            .unwrap()
    };
    let all = run(&[]);
    let stdout = String::from_utf8_lossy(&all.stdout);
    assert!(!all.status.success(), "{stdout}");
    assert_eq!(stdout.matches("FAILED").count(), 3, "{stdout}");
    assert!(stdout.contains("4 rows checked"), "{stdout}");
    let one = run(&["--id", &ids[3]]);
    let stdout = String::from_utf8_lossy(&one.stdout);
    assert!(one.status.success(), "{stdout}");
    assert!(stdout.contains("1 rows checked"), "{stdout}");
    let since = run(&["--since", &(T0 + 120_000).to_string()]);
    let stdout = String::from_utf8_lossy(&since.stdout);
    assert!(
        stdout.contains("2 rows checked") && stdout.contains("1 failed"),
        "{stdout}"
    );
}

/// A member holding the database's credentials stores a well-formed row with a forged signature
/// under an honest id before its writer: the writer finds the id taken, reads the row back, and
/// raises the alarm (log, metric, /health) instead of taking it as its own.
#[tokio::test]
async fn a_writer_that_finds_its_id_taken_audits_the_row() {
    let store = common::fresh_postgres("taken").await;
    let keys = common::keys();
    let honest = common::price(&keys, common::T0, 301_245_170_000, 3);
    let mut signatures = honest.signatures().clone();
    signatures.get_mut(&keys[1].address()).unwrap().0[10] ^= 1;
    let forged = protocol::PriceRow {
        message: protocol::Message::new(honest.message.network_id, honest.message.body, signatures)
            .unwrap(),
        ..honest.clone()
    };
    store.insert(&forged, 3).await.unwrap();
    let metrics = runtime::http::Metrics::default();
    let health = std::sync::Mutex::new(runtime::http::Health::default());
    let config = common::config(&keys);
    let outcome = runtime::driver::write(&store, &honest, &config, "n", &metrics, &health).await;
    assert_eq!(outcome, protocol::WriteOutcome::AlreadyPresent);
    assert_eq!(metrics.stored_rows_failing_audit.get(), 1);
    let id = honest.message.body.id.to_string();
    assert_eq!(health.lock().unwrap().stored_rows_failing_audit, [id]);
    // An honest row found under the id raises nothing.
    let other = common::price(&keys, common::T0 + 1, 1, 3);
    store.insert(&other, 3).await.unwrap();
    runtime::driver::write(&store, &other, &config, "n", &metrics, &health).await;
    assert_eq!(metrics.stored_rows_failing_audit.get(), 1);
}

/// An auditor is given SELECT rights and nothing else, on a table whose primary key was dropped and
/// which then took a second row under one id: `verify` must run with those rights alone (it
/// applies no schema) and name the duplicated id itself, not trust the key that is gone.
#[tokio::test]
async fn an_auditor_with_select_rights_only_finds_duplicated_ids() {
    let keys = keys();
    let store = fresh_postgres("audit_ro").await;
    let prices = common::store_prices(&store, &keys, 2).await;
    let schema = schema("audit_ro");
    let auditor = format!("auditor_{}", std::process::id());
    let twice = prices[0].message.body.id.to_string();
    let admin = common::connect(database_url().parse().unwrap()).await;
    admin
        .batch_execute(&format!(
            "SET search_path TO {schema};
             ALTER TABLE prices DROP CONSTRAINT prices_pkey;
             DO $$ DECLARE columns text; BEGIN
                 SELECT string_agg(quote_ident(column_name), ', ') INTO columns
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = 'prices'
                         AND is_generated = 'NEVER';
                 EXECUTE format('INSERT INTO prices (%s) SELECT %s FROM prices WHERE id = %L',
                     columns, columns, '{twice}');
             END $$;
             DROP ROLE IF EXISTS {auditor};
             CREATE ROLE {auditor} LOGIN;
             GRANT USAGE ON SCHEMA {schema} TO {auditor};
             GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {auditor};"
        ))
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("audit-ro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signer_file = dir.join("signers.txt");
    let list: Vec<_> = keys.iter().map(Keypair::address).collect();
    runtime::cli::write_signers(&signer_file, &list).unwrap();
    let url =
        format!("postgres://{auditor}@127.0.0.1:5432/test?options=-c%20search_path%3D{schema}");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["verify", "--network", "storetest", "--database-url", &url])
        .arg("--signers")
        .arg(&signer_file)
        .output()
        .unwrap();
    admin
        .batch_execute(&format!("DROP OWNED BY {auditor}; DROP ROLE {auditor};"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("3 rows checked"), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("FAILED {twice}: stored 2 times")),
        "{stdout}{stderr}"
    );
    assert_eq!(stdout.matches("FAILED").count(), 1, "{stdout}");
}
