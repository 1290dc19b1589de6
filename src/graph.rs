//! Who follows whom, changed only by Follow and Unfollow events as they are
//! applied in sequence order.
//!
//! Follows form a set: following twice is the same as following once, and one
//! Unfollow ends it. Most users have few followers, so each follower set is a
//! `SmallVec` that lives inline until it outgrows a handful. A user whose last
//! follower leaves is removed, so memory tracks live edges, not history.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use smallvec::SmallVec;

use crate::protocol::UserId;

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

/// Followers of one user; inline up to this many.
pub type Followers = SmallVec<[UserId; 4]>;

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
        let followers = self.followers.entry(to).or_default();
        if !followers.contains(&from) {
            followers.push(from);
            self.edges += 1;
        }
    }

    /// `from` no longer follows `to`; nothing happens if it did not.
    pub fn unfollow(&mut self, from: UserId, to: UserId) {
        if remove_from_set(&mut self.followers, to, &from) {
            self.edges -= 1;
        }
    }

    /// Everyone following `user` now, in no particular order.
    pub fn followers(&self, user: UserId) -> &[UserId] {
        self.followers.get(&user).map_or(&[], |f| f.as_slice())
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

    fn sorted(slice: &[UserId]) -> Vec<UserId> {
        let mut v = slice.to_vec();
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
        assert_eq!(graph.followers(50), &[61]);
        graph.unfollow(60, 50);
        graph.unfollow(1, 2);
        assert_eq!(graph.edges(), 1);
    }

    #[test]
    fn following_is_directed() {
        let mut graph = FollowerGraph::new();
        graph.follow(1, 2);
        assert_eq!(graph.followers(2), &[1]);
        assert!(graph.followers(1).is_empty());
    }

    #[test]
    fn a_user_without_followers_takes_no_memory() {
        let mut graph = FollowerGraph::new();
        for from in 0..100 {
            graph.follow(from, 7);
        }
        assert_eq!(graph.followers(7).len(), 100);
        for from in 0..100 {
            graph.unfollow(from, 7);
        }
        assert!(graph.followers.is_empty());
        assert_eq!(graph.edges(), 0);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut graph = FollowerGraph::new();
        graph.follow(1, 2);
        graph.clear();
        assert!(graph.followers(2).is_empty());
        assert_eq!(graph.edges(), 0);
    }
}
