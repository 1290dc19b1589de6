//! Who connects, and where: the ids each client connection claims, drawn
//! from the seed, and the client port each connects to.

use std::collections::HashSet;

use super::config::SimConfig;
use super::model::User;
use super::rng::{Rng, stream};

/// The client connections of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Verified connections in connect order: first `concurrencyLevel`
    /// distinct ids, then the `--duplicate-ids` connections that reuse some
    /// of them, then (with `--twin-ids`) one twin of each of those, in the
    /// same order. Index `i` is connection `i`'s
    /// [`ClientIndex`](super::model::ClientIndex).
    pub verified: Vec<User>,
    /// The client port each verified connection connects to (same index).
    pub verified_ports: Vec<u16>,
    /// Twin connections: the last `twins` of `verified`, twin `j` claiming
    /// the id of connection `j`.
    pub twins: usize,
    /// `--silent-clients` connections, which never read and are not
    /// verified; their ids are drawn from the whole population.
    pub silent: Vec<User>,
    /// The client port each silent connection connects to (same index).
    pub silent_ports: Vec<u16>,
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
        let silent: Vec<User> = (0..config.silent_clients)
            .map(|_| rng.between(1, u64::from(users)) as User)
            .collect();
        // Twins draw nothing from the seed: with or without them, a seed
        // makes the same ids and the same events.
        let ports = config.client_port_list();
        let mut verified_ports: Vec<u16> = (0..verified.len())
            .map(|index| client_port(ports, index))
            .collect();
        let twins = if config.twin_ids { verified.len() } else { 0 };
        for index in 0..twins {
            verified.push(verified[index]);
            verified_ports.push(twin_port(ports, index));
        }
        let silent_ports = (0..silent.len())
            .map(|index| client_port(ports, index))
            .collect();
        Plan {
            verified,
            verified_ports,
            twins,
            silent,
            silent_ports,
        }
    }
}

/// The port connection `index` uses, round robin over `ports` (not empty):
/// connection 0 the first, 1 the second, and so on, so connections spread
/// evenly over a cluster's edges.
pub fn client_port(ports: &[u16], index: usize) -> u16 {
    ports[index % ports.len()]
}

/// The port the twin of connection `index` uses: the one after
/// [`client_port`]'s, so the twins of an id sit on different edges whenever
/// there are two ports or more.
pub fn twin_port(ports: &[u16], index: usize) -> u16 {
    client_port(ports, index + 1)
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

    #[test]
    fn ports_go_round_robin() {
        let ports = [9100, 9101, 9102];
        let assigned: Vec<u16> = (0..7).map(|i| client_port(&ports, i)).collect();
        assert_eq!(assigned, [9100, 9101, 9102, 9100, 9101, 9102, 9100]);
        let twins: Vec<u16> = (0..4).map(|i| twin_port(&ports, i)).collect();
        assert_eq!(twins, [9101, 9102, 9100, 9101]);
        assert_eq!(client_port(&[7], 5), 7);
        assert_eq!(twin_port(&[7], 5), 7, "one port: the twin shares it");
    }

    #[test]
    fn without_client_ports_everyone_uses_the_client_port() {
        let config = SimConfig {
            concurrency_level: 4,
            silent_clients: 2,
            ..SimConfig::default()
        };
        let plan = Plan::new(&config);
        assert_eq!(plan.verified_ports, [9099; 4]);
        assert_eq!(plan.silent_ports, [9099; 2]);
        assert_eq!(plan.twins, 0);
    }

    #[test]
    fn connections_spread_over_the_client_ports() {
        let config = SimConfig {
            concurrency_level: 4,
            duplicate_ids: 1,
            silent_clients: 3,
            client_ports: Some(vec![9100, 9101]),
            ..SimConfig::default()
        };
        let plan = Plan::new(&config);
        assert_eq!(plan.verified_ports, [9100, 9101, 9100, 9101, 9100]);
        assert_eq!(plan.silent_ports, [9100, 9101, 9100]);
    }

    #[test]
    fn each_twin_claims_its_ids_on_the_next_port() {
        let config = SimConfig {
            concurrency_level: 3,
            duplicate_ids: 1,
            silent_clients: 2,
            client_ports: Some(vec![9100, 9101]),
            ..SimConfig::default()
        };
        let plain = Plan::new(&config);
        let twinned = Plan::new(&SimConfig {
            twin_ids: true,
            ..config
        });
        assert_eq!(twinned.twins, 4);
        assert_eq!(twinned.verified.len(), 8);
        assert_eq!(twinned.verified[..4], plain.verified[..]);
        assert_eq!(twinned.verified[4..], plain.verified[..]);
        assert_eq!(
            twinned.verified_ports,
            [9100, 9101, 9100, 9101, 9101, 9100, 9101, 9100]
        );
        for index in 0..4 {
            assert_ne!(
                twinned.verified_ports[index],
                twinned.verified_ports[4 + index],
                "an id and its twin on different edges"
            );
        }
        // Twins draw nothing from the seed.
        assert_eq!(twinned.silent, plain.silent);
        assert_eq!(twinned.silent_ports, plain.silent_ports);
    }
}
