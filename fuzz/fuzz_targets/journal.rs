//! Arbitrary bytes as a flight recording (`runtime replay` reads whatever file it is handed):
//! reading never panics, every record re-encodes to bytes that read back as the same record, and
//! a snapshot that restores at all gives a node whose own snapshot restores to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::journal::{self, Record};
use std::sync::LazyLock;

use protocol::{Address, Config, Feed, Node, Signers, testing};

/// The deployment a snapshot is restored into, made once: deriving keys is slow.
static DEPLOYMENT: LazyLock<(Config, Address)> = LazyLock::new(|| {
    let keys = testing::keys(4);
    let signers = Signers::allowlist(keys.iter().map(|k| k.address()));
    (
        Config::new("fuzz", Feed::eth_usd(), signers),
        keys[0].address(),
    )
});

fuzz_target!(|bytes: &[u8]| {
    let file = [journal::MAGIC.as_slice(), bytes].concat();
    let records = journal::records(&file).expect("the magic is there");
    let (config, me) = (&DEPLOYMENT.0, DEPLOYMENT.1);
    for record in records {
        let Ok((_, record)) = record else { break };
        let again = [journal::MAGIC.as_slice(), &encoded(&record)].concat();
        let reread = journal::records(&again).expect("the magic is there").next();
        assert_eq!(reread.map(|r| r.map(|(_, r)| r)), Some(Ok(record.clone())));
        if let Record::Snapshot(snapshot) = &record
            && let Ok(node) = Node::restore(config.clone(), me, snapshot)
        {
            let first = node.snapshot();
            let restored = Node::restore(config.clone(), me, &first).expect("its own snapshot");
            assert_eq!(restored.snapshot(), first);
        }
    }
});

fn encoded(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    record.encode(&mut bytes);
    bytes
}
