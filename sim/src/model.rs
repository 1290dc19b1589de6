//! The reference model: the follower graph as the simulator believes it, and
//! which verified connections must receive each event.
//!
//! Written apart from the server's `graph` and `router` on purpose: a model
//! that shared their code would share their bugs and could never catch them.
//! It is also shaped differently: it tracks only the follows whose follower
//! is a verified user, because only those can make anyone expect anything,
//! plus the list of every live edge so an Unfollow can undo a random one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::mix::Kind;

/// Index of a verified client connection (0-based, in connect order).
pub type ClientIndex = u32;

/// A user id as the simulator draws it (1..=numberOfUsers, which fits in 32
/// bits).
pub type User = u32;

/// A cheap hasher for the model's integer keys.
///
/// SipHash would cost more than the rest of generating an event; the keys
/// are our own random numbers, so nobody can aim collisions at it.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, key: u32) {
        self.write_u64(u64::from(key));
    }

    fn write_u64(&mut self, key: u64) {
        // One multiply spreads the key over the high bits the table uses;
        // the fold brings some back down for its control bytes.
        let spread = (self.0 ^ key).wrapping_mul(0xA24B_AED4_963E_E407);
        self.0 = spread ^ (spread >> 31);
    }
}

/// A `HashMap` keyed by small integers with [`KeyHasher`].
type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// Packs a follow edge into one key.
#[inline]
fn edge_key(from: User, to: User) -> u64 {
    (u64::from(from) << 32) | u64::from(to)
}

/// The simulator's own follower graph plus the verified connections.
#[derive(Debug, Default)]
pub struct Model {
    /// For each user with at least one verified connection, those
    /// connections (several when ids are duplicated on purpose).
    claims: KeyMap<User, Vec<ClientIndex>>,
    /// Verified connections in all; a Broadcast reaches each.
    clients: ClientIndex,
    /// Every live edge, packed, so an Unfollow can pick one uniformly.
    live: Vec<u64>,
    /// Where each live edge sits in `live`, for O(1) removal and for
    /// treating a repeated Follow as the no-op it is (edges form a set).
    edge_at: KeyMap<u64, u32>,
    /// For each followed user, its followers that have a verified
    /// connection: exactly who a Status from that user must reach.
    watchers: KeyMap<User, Vec<User>>,
}

impl Model {
    /// A model whose verified connection `i` claims user `claims[i]`.
    pub fn new(claims: &[User]) -> Self {
        let mut model = Model {
            clients: ClientIndex::try_from(claims.len())
                .expect("fewer than 2^32 client connections"),
            ..Model::default()
        };
        for (client, &user) in claims.iter().enumerate() {
            model
                .claims
                .entry(user)
                .or_default()
                .push(client as ClientIndex);
        }
        model
    }

    /// Live follow edges.
    pub fn live_edges(&self) -> usize {
        self.live.len()
    }

    /// The live edge at `index` (`index < live_edges()`), as `(from, to)`.
    pub fn edge(&self, index: usize) -> (User, User) {
        let key = self.live[index];
        ((key >> 32) as User, key as User)
    }

    /// Applies one event in seq order and calls `deliver` once per verified
    /// connection that must receive it. Returns how many that was.
    #[inline]
    pub fn apply(
        &mut self,
        kind: Kind,
        from: User,
        to: User,
        mut deliver: impl FnMut(ClientIndex),
    ) -> u32 {
        match kind {
            Kind::Follow => {
                self.follow(from, to);
                self.notify(to, &mut deliver)
            }
            Kind::Unfollow => {
                self.unfollow(from, to);
                0
            }
            Kind::Private => self.notify(to, &mut deliver),
            Kind::Broadcast => {
                for client in 0..self.clients {
                    deliver(client);
                }
                self.clients
            }
            Kind::Status => {
                let Some(followers) = self.watchers.get(&from) else {
                    return 0;
                };
                let mut count = 0;
                for follower in followers {
                    if let Some(clients) = self.claims.get(follower) {
                        for &client in clients {
                            deliver(client);
                        }
                        count += clients.len() as u32;
                    }
                }
                count
            }
        }
    }

    /// Calls `deliver` for every verified connection of `user`.
    #[inline]
    fn notify(&self, user: User, deliver: &mut impl FnMut(ClientIndex)) -> u32 {
        let Some(clients) = self.claims.get(&user) else {
            return 0;
        };
        for &client in clients {
            deliver(client);
        }
        clients.len() as u32
    }

    /// Adds the edge `from → to` unless it is already live.
    fn follow(&mut self, from: User, to: User) {
        let key = edge_key(from, to);
        let next = self.live.len() as u32;
        if let std::collections::hash_map::Entry::Vacant(slot) = self.edge_at.entry(key) {
            slot.insert(next);
            self.live.push(key);
            if self.claims.contains_key(&from) {
                self.watchers.entry(to).or_default().push(from);
            }
        }
    }

    /// Removes the edge `from → to` if it is live.
    fn unfollow(&mut self, from: User, to: User) {
        let Some(at) = self.edge_at.remove(&edge_key(from, to)) else {
            return;
        };
        self.live.swap_remove(at as usize);
        if let Some(&moved) = self.live.get(at as usize) {
            self.edge_at.insert(moved, at);
        }
        if self.claims.contains_key(&from)
            && let Some(followers) = self.watchers.get_mut(&to)
        {
            if let Some(pos) = followers.iter().position(|&f| f == from) {
                followers.swap_remove(pos);
            }
            if followers.is_empty() {
                self.watchers.remove(&to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `kind from to` and returns the recipients, sorted.
    fn apply(model: &mut Model, kind: Kind, from: User, to: User) -> Vec<ClientIndex> {
        let mut out = Vec::new();
        let count = model.apply(kind, from, to, |c| out.push(c));
        assert_eq!(count as usize, out.len());
        out.sort_unstable();
        out
    }

    #[test]
    fn recipients_of_a_hand_made_sequence() {
        // Connections 0, 1, 2 claim users 10, 20, 30; connection 3 claims 20
        // again. User 40 is in the population but not connected.
        let mut model = Model::new(&[10, 20, 30, 20]);
        use Kind::*;
        // Follow notifies `to`'s connections, whoever follows.
        assert_eq!(apply(&mut model, Follow, 10, 20), vec![1, 3]);
        assert_eq!(apply(&mut model, Follow, 30, 20), vec![1, 3]);
        assert_eq!(apply(&mut model, Follow, 40, 20), vec![1, 3]);
        assert_eq!(apply(&mut model, Follow, 20, 10), vec![0]);
        // Status reaches connected followers only.
        assert_eq!(apply(&mut model, Status, 20, 0), vec![0, 2]);
        assert_eq!(apply(&mut model, Status, 10, 0), vec![1, 3]);
        assert_eq!(apply(&mut model, Status, 30, 0), Vec::<u32>::new());
        // Following twice is following once: one Unfollow ends it.
        assert_eq!(apply(&mut model, Follow, 10, 20), vec![1, 3]);
        assert_eq!(apply(&mut model, Unfollow, 10, 20), Vec::<u32>::new());
        assert_eq!(apply(&mut model, Status, 20, 0), vec![2]);
        // Unfollowing what is not followed changes nothing.
        assert_eq!(apply(&mut model, Unfollow, 10, 20), Vec::<u32>::new());
        assert_eq!(apply(&mut model, Status, 20, 0), vec![2]);
        // Private reaches `to` only; the sender is not notified.
        assert_eq!(apply(&mut model, Private, 10, 30), vec![2]);
        assert_eq!(apply(&mut model, Private, 10, 40), Vec::<u32>::new());
        // Broadcast reaches every connection, duplicates included.
        assert_eq!(apply(&mut model, Broadcast, 0, 0), vec![0, 1, 2, 3]);
        assert_eq!(model.live_edges(), 3);
    }

    #[test]
    fn live_edges_stay_consistent_under_random_removal() {
        let mut model = Model::new(&[1]);
        for from in 1..=50 {
            model.apply(Kind::Follow, from, 1, |_| {});
        }
        assert_eq!(model.live_edges(), 50);
        while model.live_edges() > 0 {
            let (from, to) = model.edge(model.live_edges() / 2);
            model.apply(Kind::Unfollow, from, to, |_| {});
        }
        assert_eq!(apply(&mut model, Kind::Status, 1, 0), Vec::<u32>::new());
        assert!(model.edge_at.is_empty());
        assert!(model.watchers.is_empty());
    }
}
