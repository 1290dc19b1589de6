//! Where the pipeline's in-order frames go: the clients' outboxes and the
//! broadcast log or, in a cluster's ingest, the shared log's batches. Each
//! frame for a client is admitted by the slow-consumer rule
//! ([`ConsumerLimits::admit`](super::consumer::ConsumerLimits::admit)),
//! which the clients apply: queued, queued with the turn ended, or refused
//! with a cut.

use std::time::Instant;

use super::batcher::Batcher;
use super::clients::Clients;
use super::pipeline::{Deliver, route_event};
use super::protocol::{EventKind, Seq};
use super::router::{ConnKey, Router};
use super::transport::Transport;

/// The engine's delivery target at one instant: the clients, or (in an
/// ingest) the batches for the shared log, where every in-order event goes
/// unrouted.
pub(super) struct Fanout<'a, T: Transport> {
    /// Every client and its output.
    pub(super) clients: &'a mut Clients<T>,
    /// An ingest's output; `None` when events are routed to clients.
    pub(super) batcher: Option<&'a mut Batcher>,
    /// When these frames are routed.
    pub(super) now: Instant,
}

impl<'a, T: Transport> Fanout<'a, T> {
    /// The delivery target of frames routed at `now`: `batcher` if there is
    /// one, otherwise the clients.
    pub(super) fn new(
        clients: &'a mut Clients<T>,
        batcher: Option<&'a mut Batcher>,
        now: Instant,
    ) -> Self {
        Fanout {
            clients,
            batcher,
            now,
        }
    }

    /// True when queued output is over its budget, a client that still
    /// reads is far behind, or the log has too many records not yet stored:
    /// the source pauses.
    pub(super) fn over_budget(&self) -> bool {
        self.clients.output_full() || self.batcher.as_ref().is_some_and(|b| b.is_full())
    }
}

impl<T: Transport> Deliver for Fanout<'_, T> {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        self.clients.queue_frame(conn, frame, self.now);
    }

    fn broadcast(&mut self, frame: &[u8], _conns: impl Iterator<Item = ConnKey>) {
        self.clients.queue_broadcast(frame, self.now);
    }

    fn is_full(&self) -> bool {
        self.clients.is_turn_full() || self.over_budget()
    }

    fn event(&mut self, router: &mut Router, seq: Seq, kind: EventKind, frame: &[u8]) -> u64 {
        match self.batcher.as_deref_mut() {
            Some(batcher) => {
                batcher.append(seq, frame, self.now);
                0
            }
            None => route_event(self, router, kind, frame),
        }
    }

    fn new_run(&mut self, router: &mut Router) {
        match self.batcher.as_deref_mut() {
            Some(batcher) => batcher.new_run(),
            None => router.clear_graph(),
        }
    }
}
