//! Fetching ahead. A driver of thousands of nodes wakes each among the others, and every line of a
//! node it reads is a miss; one after another, they stall it. Told which lines a wake reads first,
//! it has the next node's fetched while it drives this one, and the misses overlap.

use crate::node::Node;

/// Has the memory a part lies in fetched into the cache, without reading it (a processor's
/// prefetch): a hint, which changes nothing but how soon the part can be read.
pub trait Prefetch {
    fn fetch<T>(&self, part: &T);
}

impl Node {
    /// Shows `prefetch` the parts of this node a wake reads first: its clock, its actions, the
    /// prices it holds, its counts, its timers and its place among the writers. Reads nothing.
    pub fn prefetch(&self, prefetch: &impl Prefetch) {
        prefetch.fetch(self);
        prefetch.fetch(&self.actions);
        self.book.prefetch(prefetch);
        prefetch.fetch(&self.counters);
        self.timers.prefetch(prefetch);
        prefetch.fetch(&self.lease);
    }

    /// Shows `prefetch` what the node's own lines point to and a wake reads first: the entries of
    /// its newest prices, which most messages look up. Unlike [`Node::prefetch`], it reads where
    /// they lie, in the node's own lines: it is for a node whose lines were shown a while before.
    pub fn prefetch_pointed(&self, prefetch: &impl Prefetch) {
        self.book.prefetch_newest(prefetch);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::{Config, Signers};
    use crate::io::{Event, MessageRef};
    use crate::price::Feed;
    use crate::price::PriceBody;
    use crate::testing::{body, keys, signed, step};

    /// Where each part shown lies, by its first byte.
    #[derive(Default)]
    struct Addresses(RefCell<Vec<usize>>);

    impl Prefetch for Addresses {
        fn fetch<T>(&self, part: &T) {
            self.0.borrow_mut().push(part as *const T as usize);
        }
    }

    fn node() -> Node {
        let keys = keys(4);
        let config = Config::new(
            "test",
            Feed::eth_usd(),
            Signers::allowlist(keys.iter().map(|k| k.address())),
        );
        Node::new(config, keys[0].address(), 7, 1_000).expect("a valid config")
    }

    /// The queue's room would be cold by the node's next wake; the allocator's is warm.
    #[test]
    fn a_drained_node_keeps_no_room_for_actions() {
        let mut node = node();
        let junk = Event::Gossip {
            message: MessageRef { token: 1 },
            bytes: vec![1, 2, 3],
        };
        assert_eq!(step(&mut node, 1_000, junk).len(), 1, "a verdict");
        assert_eq!(node.actions.capacity(), 0);
    }

    #[test]
    fn the_parts_shown_lie_in_the_node_each_on_a_line_of_its_own() {
        let node = node();
        let shown = Addresses::default();
        node.prefetch(&shown);
        let start = &node as *const Node as usize;
        let lines: Vec<usize> = (shown.0.borrow().iter())
            .map(|&at| {
                assert!(
                    (start..start + size_of::<Node>()).contains(&at),
                    "outside the node"
                );
                (at - start) / 64
            })
            .collect();
        assert!(
            lines.windows(2).all(|pair| pair[0] < pair[1]),
            "lines in the order laid out, none shown twice: {lines:?}"
        );
        assert_eq!(lines.len(), 9);
    }

    /// Each of the newest entries has every line of its body shown, which each message is compared
    /// with, and the first of its signatures; nothing outside them is shown.
    #[test]
    fn the_parts_pointed_to_are_the_newest_entries_bodies_and_signatures() {
        let keys = keys(4);
        let mut node = node();
        let shown = Addresses::default();
        node.prefetch_pointed(&shown);
        assert!(shown.0.borrow().is_empty(), "nothing held, nothing shown");
        let bodies = [body(&keys[1], 1_000, 100), body(&keys[2], 1_000, 100)];
        for (token, body) in (0..).zip(bodies) {
            let bytes = signed(node.network_id, body, &[&keys[token as usize + 1]]).encode();
            let gossip = Event::Gossip {
                message: MessageRef { token },
                bytes,
            };
            step(&mut node, 1_000, gossip);
        }
        node.prefetch_pointed(&shown);
        let lines: Vec<usize> = shown.0.borrow().iter().map(|at| at / 64).collect();
        let entries = bodies.map(|body| node.book.get(body.id).expect("held"));
        for entry in entries {
            let start = entry as *const _ as usize;
            let first = &entry.body as *const PriceBody as usize;
            let last = first + size_of::<PriceBody>() - 1;
            for line in
                (first / 64..=last / 64).chain([&entry.signatures as *const _ as usize / 64])
            {
                assert!(
                    lines.contains(&line),
                    "line {} of an entry not shown",
                    line - start / 64
                );
            }
        }
        let spans =
            entries.map(|e| e as *const _ as usize..e as *const _ as usize + size_of_val(e));
        for &at in shown.0.borrow().iter() {
            assert!(
                spans.iter().any(|span| span.contains(&at)),
                "outside the entries"
            );
        }
    }
}
