//! Who follows whom, changed only by Follow and Unfollow events as they are
//! applied in sequence order.
//!
//! Follows form a set: following twice is the same as following once, and one
//! Unfollow ends it. Most users have few followers, so each follower set is a
//! `SmallVec` that lives inline until it outgrows a handful. A user whose last
//! follower leaves is removed, so memory tracks live edges, not history.
//!
//! The graph has a byte budget, like the window and the outboxes: a source
//! that sends fresh follows without end must not grow the server without
//! bound. Its bytes are estimated from its counts ([`USER_BYTES`] per user
//! with followers, [`EDGE_BYTES`] per follow), with no bookkeeping per
//! operation beyond them. Past the budget a new follow is refused: not
//! recorded, and counted. A new run, and a map emptied by unfollows, give
//! their memory back.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use smallvec::SmallVec;

use crate::engine::protocol::UserId;

/// A fast hasher for integer keys that a peer chooses but cannot exploit to
/// degrade us badly: a multiply-xorshift mix of the 64-bit key.
///
/// The default SipHash costs more than the rest of routing an event; keys here
/// are plain integers, so a strong multiplicative mix is enough.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        let mut mixed = (self.0 ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        mixed ^= mixed >> 29;
        mixed = mixed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        self.0 = mixed ^ (mixed >> 32);
    }

    fn write_usize(&mut self, key: usize) {
        self.write_u64(key as u64);
    }
}

/// A `HashMap` keyed by user id with [`IdHasher`].
pub type IdMap<V> = HashMap<UserId, V, BuildHasherDefault<IdHasher>>;

/// Removes `value` from the small set stored under `key`, dropping the entry
/// when the set empties so the map tracks live entries only. Returns whether
/// the value was there.
pub fn remove_from_set<A: smallvec::Array>(
    map: &mut IdMap<SmallVec<A>>,
    key: UserId,
    value: &A::Item,
) -> bool
where
    A::Item: PartialEq,
{
    let Some(set) = map.get_mut(&key) else {
        return false;
    };
    let Some(at) = set.iter().position(|item| item == value) else {
        return false;
    };
    set.swap_remove(at);
    if set.is_empty() {
        map.remove(&key);
    }
    true
}

/// What one user with followers costs, at most: a map entry (the id and
/// its follower set, inline while small, plus a control byte), doubled for
/// the table's spare room (a load factor of 7/8, and growth by doubling).
/// Measured: 3 M follows between fresh ids took the server to 353 MiB,
/// 123 bytes a follow; this estimate charges 114 + [`EDGE_BYTES`].
pub const USER_BYTES: usize = 2 * (std::mem::size_of::<(UserId, Followers)>() + 1);

/// What one follow costs beyond its user's entry, at most: an id in a
/// spilled small vector or a hash set (8 bytes and a control byte), with
/// room to grow.
pub const EDGE_BYTES: usize = 24;

/// Past this many followers, a user's followers move from a small vector
/// (linear scans, no hashing, inline storage) to a hash set, so a user with
/// millions of followers costs O(1) per follow, not O(n).
const MANY_FOLLOWERS: usize = 16;

/// Followers of one user.
#[derive(Debug)]
enum Followers {
    /// Up to [`MANY_FOLLOWERS`]; the first four inline.
    Few(SmallVec<[UserId; 4]>),
    /// More than that.
    Many(HashSet<UserId, BuildHasherDefault<IdHasher>>),
}

impl Followers {
    /// True when `user` is among them.
    fn contains(&self, user: UserId) -> bool {
        match self {
            Followers::Few(few) => few.contains(&user),
            Followers::Many(many) => many.contains(&user),
        }
    }
}

/// The follower graph: for each user, who follows them.
#[derive(Debug)]
pub struct FollowerGraph {
    /// `followers[to]` holds every `from` that follows `to`.
    followers: IdMap<Followers>,
    /// Live edges, for stats.
    edges: usize,
    /// Estimated bytes past which new follows are refused.
    budget: usize,
    /// Follows refused for the budget.
    refused: u64,
}

impl Default for FollowerGraph {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl FollowerGraph {
    /// An empty graph that takes at most about `budget` bytes.
    pub fn new(budget: usize) -> Self {
        FollowerGraph {
            followers: IdMap::default(),
            edges: 0,
            budget,
            refused: 0,
        }
    }

    /// The graph's estimated size in bytes (see [`USER_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.followers.len() * USER_BYTES + self.edges * EDGE_BYTES
    }

    /// Follows refused because the graph was at its budget.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// `from` follows `to` from now on, unless that would take the graph
    /// past its budget: then it is refused and counted, and false returned
    /// (a follow already recorded is never refused).
    pub fn follow(&mut self, from: UserId, to: UserId) -> bool {
        if self.bytes() + USER_BYTES + EDGE_BYTES > self.budget {
            return self.follow_at_budget(from, to);
        }
        self.record(from, to);
        true
    }

    /// [`FollowerGraph::follow`] near the budget: a new follow is recorded
    /// only if it fits, with its user's entry if that is new.
    #[inline(never)]
    fn follow_at_budget(&mut self, from: UserId, to: UserId) -> bool {
        let cost = match self.followers.get(&to) {
            Some(followers) if followers.contains(from) => return true,
            Some(_) => EDGE_BYTES,
            None => USER_BYTES + EDGE_BYTES,
        };
        if self.bytes() + cost > self.budget {
            self.refused = self.refused.saturating_add(1);
            if self.refused.is_power_of_two() {
                // The 1st, 2nd, 4th, 8th... refusal: a rate limit with no
                // clock, so a flood cannot flood the log.
                log::warn!(
                    "follower graph at its budget ({} bytes, --max-follow-bytes): \
                     {} follow(s) not recorded so far; the followed are still notified",
                    self.budget,
                    self.refused
                );
            }
            return false;
        }
        self.record(from, to);
        true
    }

    /// Records that `from` follows `to`.
    fn record(&mut self, from: UserId, to: UserId) {
        let followers = self
            .followers
            .entry(to)
            .or_insert_with(|| Followers::Few(SmallVec::new()));
        let added = match followers {
            Followers::Few(few) if few.contains(&from) => false,
            Followers::Few(few) if few.len() < MANY_FOLLOWERS => {
                few.push(from);
                true
            }
            Followers::Few(few) => {
                let mut many: HashSet<UserId, _> = few.drain(..).collect();
                many.insert(from);
                *followers = Followers::Many(many);
                true
            }
            Followers::Many(many) => many.insert(from),
        };
        self.edges += usize::from(added);
    }

    /// `from` no longer follows `to`; nothing happens if it did not.
    pub fn unfollow(&mut self, from: UserId, to: UserId) {
        let Some(followers) = self.followers.get_mut(&to) else {
            return;
        };
        let (removed, now_empty) = match followers {
            Followers::Few(few) => match few.iter().position(|&f| f == from) {
                Some(at) => {
                    few.swap_remove(at);
                    (true, few.is_empty())
                }
                None => (false, false),
            },
            Followers::Many(many) => (many.remove(&from), many.is_empty()),
        };
        if now_empty {
            self.followers.remove(&to);
            self.shrink_if_sparse();
        }
        self.edges -= usize::from(removed);
    }

    /// Gives memory back once the map holds far fewer users than it has
    /// room for (after mass unfollows): amortised over the removals that
    /// emptied it, so O(1) each.
    fn shrink_if_sparse(&mut self) {
        const KEEP: usize = 1024;
        let (len, capacity) = (self.followers.len(), self.followers.capacity());
        if capacity > KEEP && len * 4 < capacity {
            self.followers.shrink_to((len * 2).max(KEEP));
        }
    }

    /// Everyone following `user` now, in no particular order.
    pub fn followers(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        let (few, many) = match self.followers.get(&user) {
            Some(Followers::Few(few)) => (few.as_slice(), None),
            Some(Followers::Many(many)) => (&[][..], Some(many)),
            None => (&[][..], None),
        };
        few.iter().chain(many.into_iter().flatten()).copied()
    }

    /// Live follow edges.
    pub fn edges(&self) -> usize {
        self.edges
    }

    /// Forgets every edge (a new run starts) and gives their memory back;
    /// the budget and the count of refusals stay.
    pub fn clear(&mut self) {
        self.followers = IdMap::default();
        self.edges = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(followers: impl Iterator<Item = UserId>) -> Vec<UserId> {
        let mut v: Vec<UserId> = followers.collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn follow_and_unfollow_form_a_set() {
        let mut graph = FollowerGraph::default();
        graph.follow(60, 50);
        graph.follow(61, 50);
        graph.follow(60, 50);
        assert_eq!(sorted(graph.followers(50)), vec![60, 61]);
        assert_eq!(graph.edges(), 2);
        graph.unfollow(60, 50);
        assert_eq!(sorted(graph.followers(50)), vec![61]);
        graph.unfollow(60, 50);
        graph.unfollow(1, 2);
        assert_eq!(graph.edges(), 1);
    }

    #[test]
    fn following_is_directed() {
        let mut graph = FollowerGraph::default();
        graph.follow(1, 2);
        assert_eq!(sorted(graph.followers(2)), vec![1]);
        assert_eq!(graph.followers(1).count(), 0);
    }

    #[test]
    fn a_user_without_followers_takes_no_memory() {
        let mut graph = FollowerGraph::default();
        for from in 0..100 {
            graph.follow(from, 7);
        }
        assert_eq!(sorted(graph.followers(7)), (0..100).collect::<Vec<_>>());
        for from in 0..100 {
            graph.unfollow(from, 7);
        }
        assert!(graph.followers.is_empty());
        assert_eq!(graph.edges(), 0);
    }

    #[test]
    fn many_followers_stay_a_set_and_shrink_back_to_nothing() {
        let mut graph = FollowerGraph::default();
        for from in 0..1000 {
            graph.follow(from, 1);
            graph.follow(from, 1);
        }
        assert_eq!(graph.edges(), 1000);
        assert_eq!(sorted(graph.followers(1)), (0..1000).collect::<Vec<_>>());
        for from in (0..1000).step_by(2) {
            graph.unfollow(from, 1);
        }
        assert_eq!(graph.followers(1).count(), 500);
        for from in 0..1000 {
            graph.unfollow(from, 1);
        }
        assert_eq!(graph.edges(), 0);
        assert!(graph.followers.is_empty());
    }

    #[test]
    fn past_its_budget_a_new_follow_is_refused_and_counted() {
        // Room for three users with one follower each.
        let mut graph = FollowerGraph::new(3 * (USER_BYTES + EDGE_BYTES));
        for user in 1..=3 {
            assert!(graph.follow(100 + user, user));
        }
        assert!(!graph.follow(104, 4), "a fourth user does not fit");
        assert!(graph.follow(101, 1), "a follow already recorded is kept");
        assert_eq!((graph.edges(), graph.refused()), (3, 1));
        assert!(graph.bytes() <= 3 * (USER_BYTES + EDGE_BYTES));
        // An unfollow makes room again.
        graph.unfollow(101, 1);
        assert!(graph.follow(104, 4));
        assert_eq!(sorted(graph.followers(4)), vec![104]);
    }

    #[test]
    fn a_new_run_and_mass_unfollows_give_memory_back() {
        let mut graph = FollowerGraph::new(usize::MAX);
        for user in 0..100_000 {
            graph.follow(user, user + 1_000_000);
        }
        assert!(graph.followers.capacity() >= 100_000);
        for user in 0..99_000 {
            graph.unfollow(user, user + 1_000_000);
        }
        assert!(
            graph.followers.capacity() < 100_000 / 4 * 2 + 1024,
            "shrunk to {}",
            graph.followers.capacity()
        );
        graph.clear();
        assert_eq!(graph.followers.capacity(), 0);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut graph = FollowerGraph::default();
        graph.follow(1, 2);
        graph.clear();
        assert_eq!(graph.followers(2).count(), 0);
        assert_eq!(graph.edges(), 0);
    }
}
