//! An in-order event to the connections it concerns.
//!
//! The router owns the follower graph and the directory of which connections
//! claimed which user id. It applies Follow and Unfollow to the graph and
//! names each recipient connection through a callback, so it never touches a
//! socket and never allocates to report recipients.

use smallvec::SmallVec;

use crate::engine::graph::{FollowerGraph, IdMap, remove_from_set};
use crate::engine::id_filter::IdFilter;
use crate::engine::protocol::{EventKind, UserId};

/// Identifies one connection to the router: the server's slab key.
pub type ConnKey = usize;

/// Connections that claimed one user id; almost always exactly one.
type Claimants = SmallVec<[ConnKey; 1]>;

/// Applies events to the follower graph and finds their recipients.
#[derive(Debug, Default)]
pub struct Router {
    /// Who follows whom, whether or not anyone is connected.
    graph: FollowerGraph,
    /// Every registered connection, by the user id it claimed.
    directory: IdMap<Claimants>,
    /// Which ids may be in `directory`, answered without a probe (most
    /// recipients of Follow, Private and Status events are not connected).
    claimed: IdFilter,
    /// Registered connections, over all ids.
    connections: usize,
}

impl Router {
    /// A router with no connections and no follows.
    pub fn new() -> Self {
        Self::default()
    }

    /// `conn` receives `user`'s notifications from now on; several
    /// connections may claim one id, and each is notified.
    pub fn register(&mut self, user: UserId, conn: ConnKey) {
        self.directory.entry(user).or_default().push(conn);
        self.claimed.add(user);
        self.connections += 1;
    }

    /// `conn` no longer receives `user`'s notifications. The graph is
    /// untouched: follows outlive connections.
    pub fn unregister(&mut self, user: UserId, conn: ConnKey) {
        if remove_from_set(&mut self.directory, user, &conn) {
            self.claimed.remove(user);
            self.connections -= 1;
        }
    }

    /// Registered connections.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// Every registered connection: a Broadcast's recipients.
    pub fn connection_keys(&self) -> impl Iterator<Item = ConnKey> + '_ {
        self.directory.values().flatten().copied()
    }

    /// The follower graph, read-only.
    pub fn graph(&self) -> &FollowerGraph {
        &self.graph
    }

    /// Caps the follower graph at about `bytes` (`--max-follow-bytes`):
    /// past it new follows are delivered but not recorded.
    pub fn set_follow_budget(&mut self, bytes: usize) {
        debug_assert_eq!(self.graph.edges(), 0, "set before any follow");
        self.graph = FollowerGraph::new(bytes);
    }

    /// Forgets every follow (a new run starts); connections stay registered.
    pub fn clear_graph(&mut self) {
        self.graph.clear();
    }

    /// Applies `event` and calls `deliver` once per recipient connection.
    /// Returns how many notifications that made.
    pub fn route(&mut self, event: EventKind, mut deliver: impl FnMut(ConnKey)) -> u64 {
        match event {
            EventKind::Follow { from, to } => {
                self.graph.follow(from, to);
                self.notify(to, &mut deliver)
            }
            EventKind::Unfollow { from, to } => {
                self.graph.unfollow(from, to);
                0
            }
            EventKind::Private { to, .. } => self.notify(to, &mut deliver),
            EventKind::Status { from } => self
                .graph
                .followers(from)
                .map(|follower| self.notify(follower, &mut deliver))
                .sum(),
            EventKind::Broadcast => {
                self.connection_keys().for_each(deliver);
                self.connections as u64
            }
        }
    }

    /// Calls `deliver` for each connection that claimed `user`; returns
    /// how many.
    #[inline]
    fn notify(&self, user: UserId, deliver: &mut impl FnMut(ConnKey)) -> u64 {
        if !self.claimed.may_contain(user) {
            return 0;
        }
        let Some(claimants) = self.directory.get(&user) else {
            return 0;
        };
        for &conn in claimants {
            deliver(conn);
        }
        claimants.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    /// Routes `event` and returns the recipients, sorted.
    fn recipients(router: &mut Router, event: EventKind) -> Vec<ConnKey> {
        let mut out = Vec::new();
        let count = router.route(event, |conn| out.push(conn));
        assert_eq!(count, out.len() as u64, "the count matches the calls");
        out.sort_unstable();
        out
    }

    /// Users 1, 2, 3 on connections 10, 20, 30; user 4 offline.
    fn router() -> Router {
        let mut router = Router::new();
        for user in 1..=3 {
            router.register(user, user as usize * 10);
        }
        router
    }

    #[test]
    fn each_kind_reaches_the_spec_recipients() {
        let mut r = router();
        assert_eq!(recipients(&mut r, Follow { from: 1, to: 2 }), vec![20]);
        assert_eq!(recipients(&mut r, Follow { from: 3, to: 2 }), vec![20]);
        assert_eq!(recipients(&mut r, Follow { from: 4, to: 2 }), vec![20]);
        assert_eq!(recipients(&mut r, Status { from: 2 }), vec![10, 30]);
        assert_eq!(
            recipients(&mut r, Unfollow { from: 1, to: 2 }),
            Vec::<usize>::new()
        );
        assert_eq!(recipients(&mut r, Status { from: 2 }), vec![30]);
        assert_eq!(recipients(&mut r, Private { from: 1, to: 3 }), vec![30]);
        assert_eq!(
            recipients(&mut r, Private { from: 1, to: 4 }),
            Vec::<usize>::new()
        );
        assert_eq!(recipients(&mut r, Broadcast), vec![10, 20, 30]);
    }

    #[test]
    fn follows_apply_while_nobody_is_connected() {
        let mut r = Router::new();
        assert_eq!(
            recipients(&mut r, Follow { from: 5, to: 6 }),
            Vec::<usize>::new()
        );
        r.register(5, 1);
        assert_eq!(recipients(&mut r, Status { from: 6 }), vec![1]);
    }

    #[test]
    fn every_connection_claiming_an_id_is_notified() {
        let mut r = router();
        r.register(2, 21);
        assert_eq!(recipients(&mut r, Private { from: 1, to: 2 }), vec![20, 21]);
        assert_eq!(r.connections(), 4);
        r.unregister(2, 20);
        assert_eq!(recipients(&mut r, Private { from: 1, to: 2 }), vec![21]);
        r.unregister(2, 21);
        r.unregister(2, 21);
        assert_eq!(
            recipients(&mut r, Private { from: 1, to: 2 }),
            Vec::<usize>::new()
        );
        assert_eq!(r.connections(), 2);
    }

    #[test]
    fn ids_sharing_a_filter_bucket_are_told_apart() {
        let first = 7;
        let second = (first + 1..)
            .find(|&id| IdFilter::bucket(id) == IdFilter::bucket(first))
            .expect("4096 buckets: another id shares one soon");
        let to = |to| Private { from: 0, to };
        let mut r = Router::new();
        r.register(first, 1);
        r.register(second, 2);
        assert_eq!(recipients(&mut r, to(second)), vec![2]);
        r.unregister(first, 1);
        r.unregister(first, 1);
        assert_eq!(recipients(&mut r, to(second)), vec![2]);
        assert_eq!(recipients(&mut r, to(first)), Vec::<usize>::new());
        r.unregister(second, 2);
        assert_eq!(recipients(&mut r, to(second)), Vec::<usize>::new());
        r.register(first, 3);
        assert_eq!(recipients(&mut r, to(first)), vec![3]);
    }

    #[test]
    fn unregistering_keeps_the_graph() {
        let mut r = router();
        recipients(&mut r, Follow { from: 1, to: 2 });
        r.unregister(1, 10);
        r.register(1, 11);
        assert_eq!(recipients(&mut r, Status { from: 2 }), vec![11]);
    }
}
