//! `runtime replay FILE`: feeds a flight recording (`crate::recorder`) to a fresh node and checks,
//! at each check the recorder wrote, that the node acted exactly as the recorded one did. With
//! `--id`, prints that price's story at the node; with `--until`, stops at a moment.

use std::collections::BTreeSet;
use std::path::PathBuf;

use protocol::journal::{self, Replayed, Seen};
use protocol::{Action, Event, Message, PriceId};

use crate::cli::ReplayArgs;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error(
        "the replay diverged from the recording {0}. Replay with --until to stop before it (the \
         last check that matched was at {1}), and --id to follow a price through it"
    )]
    Diverged(journal::ReplayError, String),
    #[error("{0}")]
    Replay(journal::ReplayError),
}

/// Replays and prints; `Ok` when every check matched.
pub fn run(args: &ReplayArgs) -> Result<(), ReplayError> {
    let replayed = replay(args, &mut |line| println!("{line}"))?;
    if replayed.cut_off > 0 {
        println!(
            "the last {} bytes are a record cut off mid-write (the node stopped while writing \
             it): read up to the last whole record",
            replayed.cut_off
        );
    }
    let until = if replayed.stopped {
        " (stopped at --until)"
    } else {
        ""
    };
    println!(
        "{} events replayed{until}, {} checks matched: the node acted exactly as recorded",
        replayed.events, replayed.checks
    );
    Ok(())
}

/// Replays `args.file`, telling `out` what a person reads.
pub fn replay(args: &ReplayArgs, out: &mut dyn FnMut(String)) -> Result<Replayed, ReplayError> {
    let bytes = std::fs::read(&args.file).map_err(|e| ReplayError::Read(args.file.clone(), e))?;
    let mut story = args.id.map(Story::new);
    let watch = |seen: Seen| match seen {
        Seen::Start(start) => out(format!(
            "node {} of network {:?} (id {}), seed {}, started {}",
            start.me,
            start.config.network,
            hex(&start.config.network_id()),
            start.seed,
            moment(start.started_at)
        )),
        Seen::Snapshot { at, .. } => out(format!(
            "continues from a snapshot of the node at {} (the file before was rotated)",
            moment(at)
        )),
        Seen::Fed {
            now,
            event,
            actions,
        } => {
            if let Some(story) = &mut story {
                story.event(now, event, out);
                story.actions(now, actions, out);
            }
        }
        Seen::End(_) => {}
    };
    journal::replay(&bytes, args.until, |replay| replay, watch).map_err(|error| match error {
        journal::ReplayError::Diverged { from_at, .. } => {
            ReplayError::Diverged(error, moment(from_at))
        }
        error => ReplayError::Replay(error),
    })
}

/// One price's story: the events and actions about it.
struct Story {
    id: PriceId,
    /// Gossip copies of the price, by token, so that their verdicts count as about it.
    copies: BTreeSet<u64>,
}

impl Story {
    fn new(id: PriceId) -> Story {
        Story {
            id,
            copies: BTreeSet::new(),
        }
    }

    fn event(&mut self, now: u64, event: &Event, out: &mut dyn FnMut(String)) {
        let about = match event {
            Event::Gossip { message, bytes } => match Message::decode(bytes) {
                Ok(m) if m.body.id == self.id => {
                    self.copies.insert(message.token);
                    Some(format!(
                        "received a copy signed by {}",
                        signers(m.signatures().keys())
                    ))
                }
                _ => None,
            },
            Event::Signed { id, .. } if *id == self.id => Some("signed it".to_owned()),
            Event::WriteFinished { id, outcome } if *id == self.id => {
                Some(format!("its write finished: {outcome:?}"))
            }
            Event::DatabaseRead { stored, .. } if stored.contains(&self.id) => {
                Some("read it from the database as stored".to_owned())
            }
            _ => None,
        };
        if let Some(about) = about {
            out(format!("{}  {about}", moment(now)));
        }
    }

    fn actions(&mut self, now: u64, actions: &[Action], out: &mut dyn FnMut(String)) {
        for action in actions {
            let about_it = action.price_id() == Some(self.id);
            let about = match action {
                Action::Verdict { message, verdict } if self.copies.remove(&message.token) => {
                    Some(format!("verdict on that copy: {verdict:?}"))
                }
                Action::Broadcast { why, bytes, .. } if about_it => {
                    let signed = Message::decode(bytes).map(|m| signers(m.signatures().keys()));
                    Some(format!(
                        "broadcast ({why:?}) signed by {}",
                        signed.unwrap_or_default()
                    ))
                }
                Action::Write(row) if about_it => Some(format!(
                    "writes it with {} signatures",
                    row.signatures().len()
                )),
                Action::Sign { .. } if about_it => Some("asks its key to sign".to_owned()),
                Action::Report(report) if about_it => Some(format!("{report:?}")),
                _ => None,
            };
            if let Some(about) = about {
                out(format!("{}  {about}", moment(now)));
            }
        }
    }
}

fn signers<'a>(addresses: impl Iterator<Item = &'a protocol::Address>) -> String {
    let each: Vec<String> = addresses.map(ToString::to_string).collect();
    each.join(", ")
}

/// A node's time (unix ms) as RFC 3339.
fn moment(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
