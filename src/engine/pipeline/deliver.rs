//! What the pipeline hands its deliveries to.
//!
//! Its own module because it is the one part of the pipeline that callers
//! implement (the server's outboxes, closures in tests): the contract for
//! taking frames, apart from the rules that decide which frames go where.

use crate::engine::protocol::{EventKind, Seq};
use crate::engine::router::{ConnKey, Router};

/// Receives each delivery: the recipient connection and the exact frame.
pub trait Deliver {
    /// Queue `frame` for `conn`.
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]);

    /// Queue `frame` for every registered connection, `conns`: a Broadcast.
    /// By default each gets it through [`Deliver::deliver`]; a receiver
    /// that can store the frame once for all of them (the server's
    /// broadcast log) overrides this and never walks `conns`.
    fn broadcast(&mut self, frame: &[u8], conns: impl Iterator<Item = ConnKey>) {
        for conn in conns {
            self.deliver(conn, frame);
        }
    }

    /// True when the receiver wants no more deliveries for now (queued output
    /// over budget, or a client due for a write). In-order frames then stay
    /// in the window until [`Pipeline::release_ready`], so filling a long
    /// hole cannot dump the whole window into the outboxes at once.
    ///
    /// [`Pipeline::release_ready`]: super::Pipeline::release_ready
    fn is_full(&self) -> bool {
        false
    }

    /// Takes one in-order event, `frame` of seq `seq`, and returns the
    /// notifications it made. By default it is routed: `router` applies it
    /// to the follow graph and names its recipients, each given the frame
    /// through [`Deliver::deliver`] or [`Deliver::broadcast`]. A receiver
    /// that forwards the ordered stream itself (a cluster's ingest, which
    /// appends it to the shared log) overrides this and routes nothing.
    fn event(&mut self, router: &mut Router, seq: Seq, kind: EventKind, frame: &[u8]) -> u64
    where
        Self: Sized,
    {
        let _ = seq;
        route_event(self, router, kind, frame)
    }

    /// A new run begins here, between the old run's last in-order event and
    /// the new run's first. By default the follow graph is forgotten; a
    /// receiver that forwards the ordered stream records the boundary.
    fn new_run(&mut self, router: &mut Router) {
        router.clear_graph();
    }
}

/// Routes one in-order event: `router` applies it to the follow graph and
/// names its recipients, each given `frame` through `out`. Returns the
/// notifications it made. [`Deliver::event`]'s default, for receivers that
/// override it only in some cases.
pub fn route_event(
    out: &mut impl Deliver,
    router: &mut Router,
    kind: EventKind,
    frame: &[u8],
) -> u64 {
    match kind {
        EventKind::Broadcast => {
            out.broadcast(frame, router.connection_keys());
            router.connections() as u64
        }
        kind => router.route(kind, |conn| out.deliver(conn, frame)),
    }
}

impl<F: FnMut(ConnKey, &[u8])> Deliver for F {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        self(conn, frame)
    }
}
