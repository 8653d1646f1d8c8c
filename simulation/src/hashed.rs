//! Hash sets and maps over keys that are hash outputs already (message ids, digests, signatures):
//! the hasher keeps the first 8 bytes of each part of the key instead of hashing it again. These
//! lookups run on every delivery, and SipHash over them was a tenth of a large run.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub type HashedMap<K, V> = HashMap<K, V, BuildHasherDefault<FirstWords>>;

#[derive(Default)]
pub struct FirstWords(u64);

impl Hasher for FirstWords {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.write_u64(u64::from_le_bytes(word));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = self.0.rotate_left(29) ^ word;
    }

    /// Length prefixes of fixed-size keys say nothing.
    fn write_usize(&mut self, _: usize) {}
}
