//! Why a run failed, as data: tests match on the variant, the binary prints
//! the `Display` form.

use std::fmt;

use super::model::ClientIndex;
use super::report::Report;
use super::{Seq, UserId};

/// One reason a run failed.
///
/// Every verification reason names the user and the connection (its index in
/// connect order, so two connections that claim one id are told apart), and
/// the first diverging seq where it can be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The configuration cannot make a run (e.g. more clients than users).
    Config(String),
    /// Connecting, or sending a client's id line, failed.
    Connect {
        /// Which connection: "event source" or "client N (user U)".
        what: String,
        /// Where it tried to connect.
        addr: String,
        /// The error, as text (I/O errors are not `Clone`).
        error: String,
    },
    /// The simulator's own poll failed (creating it, registering a socket,
    /// or waiting on it).
    Poll {
        /// The error, as text.
        error: String,
    },
    /// Writing events to the server failed.
    SourceWrite {
        /// The error, as text.
        error: String,
    },
    /// The server read no event for longer than the timeout while events
    /// were waiting to be sent.
    SourceStalled {
        /// How long nothing could be written, in milliseconds.
        waited_ms: u64,
        /// Events fully written before the stall.
        events_sent: u64,
    },
    /// Reading a client's socket failed.
    ClientRead {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The error, as text.
        error: String,
    },
    /// The server closed a client's connection while it was still owed
    /// notifications (or before the run was over).
    Disconnected {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// Notifications expected so far.
        expected: u64,
        /// Notifications received.
        received: u64,
        /// The first seq it was owed and never got, if any.
        first_missing: Option<Seq>,
    },
    /// A notification arrived after one with a higher seq.
    Reordered {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The seq that came late.
        seq: Seq,
        /// The higher seq received before it.
        after: Seq,
    },
    /// A notification never arrived although later ones did.
    Missing {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The first seq owed and never received.
        seq: Seq,
        /// The seq that arrived where `seq` was expected.
        received_instead: Seq,
        /// Notifications expected in all.
        expected: u64,
        /// Notifications received.
        received: u64,
    },
    /// A notification the connection was not owed: misrouted, or a duplicate
    /// that came out of place.
    Unexpected {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The seq received.
        seq: Seq,
    },
    /// The notification just received arrived again.
    Duplicate {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The repeated seq.
        seq: Seq,
    },
    /// The right seq arrived with different bytes than the source sent.
    Altered {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The seq whose line changed.
        seq: Seq,
        /// The line as received (lossy UTF-8, escaped, shortened).
        line: String,
    },
    /// A line that is not a notification at all (no leading seq, or longer
    /// than any event line).
    Garbled {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// The line as received (lossy UTF-8, escaped, shortened).
        line: String,
    },
    /// A connection waited longer than the timeout for a notification it
    /// was owed (the event had been sent).
    Timeout {
        /// The user the connection claimed.
        user: UserId,
        /// The connection.
        client: ClientIndex,
        /// Notifications expected in all.
        expected: u64,
        /// Notifications received.
        received: u64,
        /// The first seq owed and not received.
        first_missing: Seq,
        /// How long it waited, in milliseconds.
        waited_ms: u64,
    },
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FailureReason::*;
        match self {
            Config(reason) => write!(f, "configuration: {reason}"),
            Connect { what, addr, error } => write!(f, "cannot connect {what} to {addr}: {error}"),
            Poll { error } => write!(f, "the poll failed: {error}"),
            SourceWrite { error } => write!(f, "writing events failed: {error}"),
            SourceStalled {
                waited_ms,
                events_sent,
            } => write!(
                f,
                "the server read no events for {waited_ms} ms (after {events_sent} events)"
            ),
            ClientRead {
                user,
                client,
                error,
            } => write!(f, "user {user} (client {client}): read failed: {error}"),
            Disconnected {
                user,
                client,
                expected,
                received,
                first_missing,
            } => {
                write!(
                    f,
                    "user {user} (client {client}): disconnected by the server; expected {expected} notifications, received {received}"
                )?;
                match first_missing {
                    Some(seq) => write!(f, "; first missing seq {seq}"),
                    None => Ok(()),
                }
            }
            Reordered {
                user,
                client,
                seq,
                after,
            } => write!(
                f,
                "user {user} (client {client}): seq {seq} received after seq {after} (out of order)"
            ),
            Missing {
                user,
                client,
                seq,
                received_instead,
                expected,
                received,
            } => write!(
                f,
                "user {user} (client {client}): expected seq {seq}, received seq {received_instead}; seq {seq} never arrived (expected {expected} notifications, received {received})"
            ),
            Unexpected { user, client, seq } => write!(
                f,
                "user {user} (client {client}): unexpected notification seq {seq} (duplicate or misrouted)"
            ),
            Duplicate { user, client, seq } => {
                write!(f, "user {user} (client {client}): seq {seq} received twice")
            }
            Altered {
                user,
                client,
                seq,
                line,
            } => write!(
                f,
                "user {user} (client {client}): content altered at seq {seq}: received \"{line}\""
            ),
            Garbled { user, client, line } => write!(
                f,
                "user {user} (client {client}): not a notification line: \"{line}\""
            ),
            Timeout {
                user,
                client,
                expected,
                received,
                first_missing,
                waited_ms,
            } => write!(
                f,
                "user {user} (client {client}): no notification for {waited_ms} ms; expected {expected}, received {received}; first missing seq {first_missing}"
            ),
        }
    }
}

/// A failed run: every reason found (the first is the first divergence
/// seen), and the report of what happened up to then.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why, in the order found; never empty.
    pub reasons: Vec<FailureReason>,
    /// Counts and timings up to the failure; boxed, so the `Err` of a
    /// run's `Result` stays small however much the report carries.
    pub report: Box<Report>,
}

impl Failure {
    /// The first reason found.
    pub fn first(&self) -> &FailureReason {
        self.reasons
            .first()
            .expect("a failure has at least one reason")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, reason) in self.reasons.iter().enumerate() {
            if at > 0 {
                writeln!(f)?;
            }
            write!(f, "FAILED: {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// A received line for a failure message: lossy UTF-8, control characters
/// escaped, at most 80 characters.
pub fn show_line(line: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(line).escape_debug().collect();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
