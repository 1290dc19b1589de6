//! Who follows whom, changed only by Follow and Unfollow events as they are
//! applied in sequence order.
//!
//! Follows form a set: following twice is the same as following once, and one
//! Unfollow ends it. Most users have few followers, so each follower set is a
//! `SmallVec` that lives inline until it outgrows a handful. A user whose last
//! follower leaves is removed, so memory tracks live edges, not history.

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

/// The follower graph: for each user, who follows them.
#[derive(Debug, Default)]
pub struct FollowerGraph {
    /// `followers[to]` holds every `from` that follows `to`.
    followers: IdMap<Followers>,
    /// Live edges, for stats.
    edges: usize,
}

impl FollowerGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// `from` follows `to` from now on.
    pub fn follow(&mut self, from: UserId, to: UserId) {
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
        }
        self.edges -= usize::from(removed);
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

    /// Forgets every edge (a new run starts).
    pub fn clear(&mut self) {
        self.followers.clear();
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
        let mut graph = FollowerGraph::new();
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
        let mut graph = FollowerGraph::new();
        graph.follow(1, 2);
        assert_eq!(sorted(graph.followers(2)), vec![1]);
        assert_eq!(graph.followers(1).count(), 0);
    }

    #[test]
    fn a_user_without_followers_takes_no_memory() {
        let mut graph = FollowerGraph::new();
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
        let mut graph = FollowerGraph::new();
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
    fn clear_forgets_everything() {
        let mut graph = FollowerGraph::new();
        graph.follow(1, 2);
        graph.clear();
        assert_eq!(graph.followers(2).count(), 0);
        assert_eq!(graph.edges(), 0);
    }
}
