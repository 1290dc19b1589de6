//! What the pipeline hands its deliveries to.
//!
//! Its own module because it is the one part of the pipeline that callers
//! implement (the server's outboxes, closures in tests): the contract for
//! taking frames, apart from the rules that decide which frames go where.

use crate::engine::router::ConnKey;

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
}

impl<F: FnMut(ConnKey, &[u8])> Deliver for F {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        self(conn, frame)
    }
}
