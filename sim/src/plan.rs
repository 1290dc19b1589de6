//! Who connects: the ids each client connection claims, drawn from the seed.

use std::collections::HashSet;

use super::config::SimConfig;
use super::model::User;
use super::rng::{Rng, stream};

/// The client connections of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Verified connections in connect order: first `concurrencyLevel`
    /// distinct ids, then the `--duplicate-ids` connections that reuse some
    /// of them. Index `i` is connection `i`'s
    /// [`ClientIndex`](super::model::ClientIndex).
    pub verified: Vec<User>,
    /// `--silent-clients` connections, which never read and are not
    /// verified; their ids are drawn from the whole population.
    pub silent: Vec<User>,
}

impl Plan {
    /// The connections `config` asks for (it must be valid).
    pub fn new(config: &SimConfig) -> Plan {
        let users = config.users();
        let wanted = config.concurrency_level.min(users) as usize;
        let mut rng = Rng::stream(config.random_seed, stream::CLIENTS);
        let mut verified = distinct_ids(&mut rng, wanted, users);
        for _ in 0..config.duplicate_ids {
            if wanted == 0 {
                break;
            }
            let pick = rng.below(wanted as u64) as usize;
            verified.push(verified[pick]);
        }
        let silent = (0..config.silent_clients)
            .map(|_| rng.between(1, u64::from(users)) as User)
            .collect();
        Plan { verified, silent }
    }
}

/// `count` distinct ids drawn uniformly from 1..=users (`count <= users`).
fn distinct_ids(rng: &mut Rng, count: usize, users: User) -> Vec<User> {
    if count.saturating_mul(2) > users as usize {
        // Dense: shuffle the whole population and take a prefix.
        let mut all: Vec<User> = (1..=users).collect();
        rng.shuffle(&mut all);
        all.truncate(count);
        return all;
    }
    // Sparse: redraw the rare repeat.
    let mut seen = HashSet::with_capacity(count);
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let id = rng.between(1, u64::from(users)) as User;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_in_range_and_reproducible() {
        for (concurrency, users) in [(100, 1000), (10, 10), (60, 100), (0, 5)] {
            let config = SimConfig {
                concurrency_level: concurrency,
                number_of_users: Some(users),
                ..SimConfig::default()
            };
            let plan = Plan::new(&config);
            assert_eq!(plan.verified.len(), concurrency as usize);
            let distinct: HashSet<_> = plan.verified.iter().collect();
            assert_eq!(distinct.len(), concurrency as usize);
            assert!(plan.verified.iter().all(|&id| (1..=users).contains(&id)));
            assert_eq!(plan, Plan::new(&config));
        }
    }

    #[test]
    fn duplicates_reuse_verified_ids_and_silent_ones_are_extra() {
        let config = SimConfig {
            concurrency_level: 10,
            duplicate_ids: 3,
            silent_clients: 4,
            ..SimConfig::default()
        };
        let plan = Plan::new(&config);
        assert_eq!(plan.verified.len(), 13);
        assert!(
            plan.verified[10..]
                .iter()
                .all(|id| plan.verified[..10].contains(id))
        );
        assert_eq!(plan.silent.len(), 4);
    }
}
