//! Four nodes from start to stored prices, as one readable trace.

mod common;

use common::cluster::Cluster;

const T0: u64 = 1_767_225_600_000;

#[test]
fn four_nodes_store_each_price_once_with_a_quorum() {
    let keys = common::keys(4);
    let mut config = common::config(&keys);
    config.min_peers = 3;
    let mut cluster = Cluster::new(keys.clone(), config.clone(), T0);
    // Each node publishes at its own phase of the 10-minute interval (for these keys, within the
    // first 130 s).
    cluster.run_until(T0 + 200_000);
    assert_eq!(cluster.stored.len(), 4, "each node's first price is stored");

    for key in &keys {
        let origin = key.address();
        assert!(
            cluster.stored.values().any(|row| row.origin == origin),
            "a price of {origin} is stored"
        );
    }
    assert_eq!(cluster.duplicate_inserts, 0);
    for row in cluster.stored.values() {
        assert_eq!(row.audit(&config), Ok(()));
    }
    // Per price: one publication, a co-signature from each of the committee of 3, and merges only
    // from signers (at most one each).
    for id in cluster.stored.keys() {
        let of_id = |kind: &str| {
            let needle = format!("broadcast {kind} {id}");
            cluster.trace.iter().filter(|l| l.contains(&needle)).count()
        };
        assert_eq!((of_id("Publish"), of_id("CoSign")), (1, 3), "{id}");
        assert!(of_id("Merge") <= 4, "{id}");
    }
    insta::assert_snapshot!(cluster.trace.join("\n"));

    // Every node learns from the database that the prices are stored, forgets them, and so never
    // retransmits them.
    cluster.run_until(T0 + 500_000);
    for node in &cluster.nodes {
        assert_eq!(node.footprint().prices, 0, "{:?}", node.address());
        assert_eq!(node.counters().retransmits, 0);
    }
    assert_eq!(cluster.stored.len(), 4);
}
