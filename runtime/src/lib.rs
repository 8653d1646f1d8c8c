//! The production node: tokio, libp2p and PostgreSQL (or an embedded SQLite) around
//! `protocol::Node`. It moves bytes, time and results between the world and the node and holds no
//! oracle rule of its own.

pub mod cli;
pub mod driver;
pub mod http;
pub mod key;
pub mod network;
pub mod sources;
pub mod store;
pub mod verify;
