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
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::{Config, Signers};
    use crate::io::{Event, MessageRef};
    use crate::price::Feed;
    use crate::testing::{keys, step};

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
}
