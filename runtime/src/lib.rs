//! The production node: tokio, libp2p and PostgreSQL (or an embedded SQLite) around
//! `protocol::Node`. It moves bytes, time and results between the world and the node and holds no
//! oracle rule of its own.

pub mod cli;
pub mod driver;
pub mod http;
pub mod key;
pub mod network;
pub mod recorder;
pub mod replay;
pub mod sources;
pub mod store;
pub mod verify;

/// An error and every underlying cause, joined by ": ". Libraries often say only "error sending
/// request" or "error connecting to server"; the cause (name lookup failed, connection refused,
/// timed out, a TLS failure) is what an operator needs.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}
