//! Client ids: reading the id line (and, after it, dropping whatever else
//! a client sends), the id deadline, and half-closes.

use std::io::Read;
use std::time::Instant;

use log::debug;

use super::{ClientState, Clients};
use crate::engine::consumer::CloseReason;
use crate::engine::inbox::Inbox;
use crate::engine::outbox::Outbox;
use crate::engine::pipeline::Pipeline;
use crate::engine::protocol::{self, Line, LineStart, UserId};
use crate::engine::router::ConnKey;
use crate::engine::transport::{ConnId, Transport};
use crate::io_errors::{interrupted, would_block};

/// Bytes read and dropped per call from a registered client, which has
/// nothing more to say: a stack buffer, so a chatty client costs reads, not
/// memory.
const DISCARD_BYTES: usize = 4096;

/// Reads of [`DISCARD_BYTES`] a registered client gets per turn (16 KiB,
/// one Redis I/O buffer per readable event): a client that sends without
/// end is read this much, then waits for the next turn on the revisit
/// list, so it cannot keep the loop from everyone else.
const DISCARD_READS_PER_TURN: usize = 4;

impl<T: Transport> Clients<T> {
    /// Reads the id lines of the clients awaiting one that the transport
    /// reports readable: O(ready), however many wait.
    pub(in crate::engine) fn read_ready_ids(
        &mut self,
        now: Instant,
        pipeline: &mut Pipeline,
        net: &mut T,
    ) {
        if self.endings.awaiting_id == 0 {
            return; // Nobody to ask about: spare the transport its call.
        }
        let mut ready = std::mem::take(&mut self.ready_ids);
        net.ready_awaiting(&mut ready);
        for &key in &ready {
            let awaiting = self.slab.get(key).is_some_and(|client| {
                client.closing.is_none() && matches!(client.state, ClientState::AwaitingId(_))
            });
            if awaiting {
                self.read(key, now, pipeline, net);
            }
        }
        ready.clear();
        self.ready_ids = ready;
    }

    /// Reads the clients whose bytes a turn's budget left unread, once each
    /// (readiness is edge-triggered: it will not be reported again for
    /// bytes already waiting).
    pub(in crate::engine) fn read_unread(
        &mut self,
        now: Instant,
        pipeline: &mut Pipeline,
        net: &mut T,
    ) {
        for index in 0..self.unread.len() {
            let (key, serial) = self.unread[index];
            let Some(client) = self.slab.get_mut(key) else {
                continue;
            };
            if client.serial == serial {
                client.revisit = false;
                self.read(key, now, pipeline, net);
            }
        }
        self.unread.clear();
    }

    /// The end of a turn: the clients this turn's budget left with bytes
    /// are read in the next, and accepting has a new budget.
    pub(in crate::engine) fn end_turn_budgets(&mut self) {
        self.accepted_this_turn = 0;
        if self.unread.is_empty() {
            std::mem::swap(&mut self.unread, &mut self.unread_next);
        } else {
            // No turn read them since (shutdown ends a turn of its own).
            self.unread.append(&mut self.unread_next);
        }
    }

    /// True when clients have bytes a turn's budget left unread.
    pub(in crate::engine) fn has_unread(&self) -> bool {
        !self.unread.is_empty() || !self.unread_next.is_empty()
    }

    /// Reads what a client sent: its id line, or (once registered) anything
    /// else, which is dropped, until it would block or a turn's budget is
    /// spent (then it is revisited next turn). End-of-file after the id is
    /// a half-close: the client stays and keeps receiving. Registers a
    /// client whose id arrived with `pipeline`.
    pub(in crate::engine) fn read(
        &mut self,
        key: ConnKey,
        now: Instant,
        pipeline: &mut Pipeline,
        net: &mut T,
    ) {
        let Some(client) = self.slab.get_mut(key) else {
            return;
        };
        if client.closing.is_some() || client.read_closed || client.revisit {
            // On the revisit list, it is read in its turn, once per turn.
            return;
        }
        if let ClientState::AwaitingId(inbox) = &mut client.state {
            let reason = match read_id(inbox, &mut client.stream) {
                IdRead::Pending => return,
                // The router's count: registered and not closed yet.
                IdRead::Id(user) if pipeline.router().connections() >= self.max_clients => {
                    self.endings.counters.refused = self.endings.counters.refused.saturating_add(1);
                    let full = format_args!(
                        "user {user}: --max-clients ({}) are registered",
                        self.max_clients
                    );
                    self.endings
                        .end(key, client, CloseReason::ClientLimit, Some(&full), now);
                    return;
                }
                IdRead::Id(user) => {
                    if let Err(err) = net.open(&mut client.stream, ConnId::Client(key)) {
                        let reason = CloseReason::ReadError;
                        self.endings.end(key, client, reason, Some(&err), now);
                        return;
                    }
                    self.endings.awaiting_id -= 1;
                    debug!("client {} registered as user {user}", client.peer);
                    client.state = ClientState::Registered(user);
                    // Owed the broadcasts from now on, not earlier ones.
                    client.outbox = Outbox::new(&self.log);
                    client.last_progress = now;
                    pipeline.register(user, key);
                    None
                }
                IdRead::Closed => Some((CloseReason::ClosedBeforeId, None)),
                IdRead::Bad(why, sent) => Some((CloseReason::BadId, Some((why, sent)))),
            };
            if let Some((reason, bad)) = reason {
                match bad {
                    Some((why, sent)) => {
                        let detail = format_args!("{why}; it sent {sent}");
                        self.endings.end(key, client, reason, Some(&detail), now);
                    }
                    None => {
                        self.endings.end(key, client, reason, None, now);
                    }
                }
                return;
            }
        }
        let mut discard = [0u8; DISCARD_BYTES];
        for _ in 0..DISCARD_READS_PER_TURN {
            match client.stream.read(&mut discard) {
                Ok(0) => {
                    debug!(
                        "client {} ended its sending side; it keeps receiving",
                        client.peer
                    );
                    client.read_closed = true;
                    net.read_closed(&client.stream);
                    return;
                }
                Ok(_) => continue,
                Err(err) if would_block(&err) => return,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    let reason = CloseReason::ReadError;
                    self.endings.end(key, client, reason, Some(&err), now);
                    return;
                }
            }
        }
        // The budget is spent and bytes may be left: next turn.
        if !client.revisit {
            client.revisit = true;
            self.unread_next.push((key, client.serial));
        }
    }

    /// Marks the clients that sent no id in time for closing.
    pub(in crate::engine) fn expire_id_deadlines(&mut self, now: Instant) {
        while let Some(&(deadline, key, serial)) = self.id_deadlines.front() {
            if deadline > now {
                break;
            }
            self.id_deadlines.pop_front();
            let Some(client) = self.slab.get_mut(key) else {
                continue;
            };
            if client.serial == serial
                && let ClientState::AwaitingId(inbox) = &client.state
            {
                // What it did send, if anything: the start of its id line.
                let sent = inbox.unfinished_line();
                let timeout = self.id_timeout;
                let within = if sent.is_empty() {
                    format_args!("none within {timeout:?}")
                } else {
                    format_args!("none within {timeout:?}; it sent {sent}")
                };
                let reason = CloseReason::NoIdInTime;
                self.endings.end(key, client, reason, Some(&within), now);
            }
        }
    }

    /// Marks every client still awaiting its id for closing (shutdown).
    pub(in crate::engine) fn close_awaiting_id(&mut self, now: Instant) {
        for (key, client) in &mut self.slab {
            if matches!(client.state, ClientState::AwaitingId(_)) {
                self.endings
                    .end(key, client, CloseReason::Shutdown, None, now);
            }
        }
    }
}

/// Outcome of reading a client's id line.
enum IdRead {
    /// No complete line yet.
    Pending,
    /// A valid id.
    Id(UserId),
    /// The peer closed (or failed) first.
    Closed,
    /// Not a valid id line, and its first bytes (without terminator).
    Bad(protocol::ParseError, LineStart),
}

/// Reads from `stream` until a complete id line, an id line known to be
/// too long (at the byte that makes it so, not at its end: a peer that
/// streams bytes with no newline is read at most twice the limit), the
/// peer closing, an error or `WouldBlock`.
fn read_id(inbox: &mut Inbox, stream: &mut impl Read) -> IdRead {
    loop {
        match inbox.next_line() {
            Some(Line::Frame { start, end }) => {
                let line = protocol::strip_terminator(inbox.frame(start, end));
                return match protocol::parse_user_id(line) {
                    Ok(user) => IdRead::Id(user),
                    Err(reason) => IdRead::Bad(reason, LineStart::of(line, true)),
                };
            }
            Some(Line::Overlong) => {
                let sent = *inbox.dropped_line();
                return IdRead::Bad(protocol::ParseError::TooLong, sent);
            }
            None if inbox.is_dropping_line() => {
                let sent = inbox.unfinished_line();
                return IdRead::Bad(protocol::ParseError::TooLong, sent);
            }
            None => inbox.compact(),
        }
        match inbox.read_from(stream, usize::MAX) {
            Ok(0) => return IdRead::Closed,
            Ok(_) => {}
            Err(err) if would_block(&err) => return IdRead::Pending,
            Err(err) if interrupted(&err) => {}
            Err(_) => return IdRead::Closed,
        }
    }
}
