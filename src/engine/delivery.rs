//! Where the pipeline's in-order frames go: the clients' outboxes and the
//! broadcast log. Each frame is admitted by the slow-consumer rule
//! ([`ConsumerLimits::admit`](super::consumer::ConsumerLimits::admit)):
//! queued, queued with the turn ended, or refused with a cut.

use std::time::Instant;

use super::clients::Clients;
use super::consumer::{Admit, Backlog, Cut};
use super::pipeline::Deliver;
use super::router::ConnKey;
use super::transport::Transport;

/// The clients as the pipeline's delivery target at one instant.
pub(super) struct Fanout<'a, T: Transport> {
    /// Every client and its output.
    pub(super) clients: &'a mut Clients<T>,
    /// When these frames are routed.
    pub(super) now: Instant,
}

impl<'a, T: Transport> Fanout<'a, T> {
    /// The clients as the delivery target of frames routed at `now`.
    pub(super) fn new(clients: &'a mut Clients<T>, now: Instant) -> Self {
        Fanout { clients, now }
    }

    /// True when queued output is over its budget or a client that still
    /// reads is far behind: the source pauses.
    pub(super) fn over_budget(&self) -> bool {
        self.clients.output_full()
    }
}

impl<T: Transport> Deliver for Fanout<'_, T> {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        let clients = &mut *self.clients;
        let Some(client) = clients.slab.get_mut(conn) else {
            return;
        };
        if client.closing.is_some() {
            return;
        }
        let backlog = Backlog {
            own_bytes: client.outbox.own_bytes(),
            pending: client.outbox.pending(&clients.log),
            write_blocked: client.write_blocked,
        };
        let (write, end_turn) = match clients.limits.admit(&backlog, frame.len()) {
            Admit::Queue { write, end_turn } => (write, end_turn),
            Admit::Cut(cut) => {
                let detail = format!(
                    "{} bytes queued for it alone (limit {})",
                    backlog.own_bytes + frame.len(),
                    clients.limits.output_limit
                );
                debug_assert_eq!(cut, Cut::OutputLimit);
                clients.cut(conn, cut, &detail, self.now);
                return;
            }
        };
        client.outbox.push(frame, &clients.log, self.now);
        clients.own_bytes = clients.own_bytes + client.outbox.own_bytes() - backlog.own_bytes;
        if write {
            clients.dirty.push(conn);
        }
        clients.turn_full |= end_turn;
        self.clients.note_peak();
    }

    /// Stored once in the log; each client takes it in when it is written
    /// (or gets a frame of its own first), which keeps a broadcast O(1)
    /// however many clients there are.
    fn broadcast(&mut self, frame: &[u8], _conns: impl Iterator<Item = ConnKey>) {
        let clients = &mut *self.clients;
        clients.log.push(frame, self.now);
        // Every client is owed all of the log since the last write: once
        // that is a turn's worth, the outboxes are written first.
        let unwritten = (clients.log.end() - clients.log_flushed) as usize;
        if unwritten > clients.limits.turn_output_bytes() {
            clients.turn_full = true;
        }
        self.clients.note_peak();
    }

    fn is_full(&self) -> bool {
        self.clients.turn_full || self.over_budget()
    }
}
