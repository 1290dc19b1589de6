//! A small seedable PRNG, so the same seed always makes the same run.
//!
//! SplitMix64: one 64-bit word of state, a few multiplies per draw, passes
//! BigCrush, and is trivially reproducible on every platform. It is not
//! cryptographic, which a load generator does not need.

/// The golden-ratio increment of SplitMix64; also spaces derived streams.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The numbered streams of one seed, so each part of a run draws
/// independently: changing the batch size, say, never changes the events.
pub mod stream {
    /// Kinds, ids and Unfollow picks: the events themselves.
    pub const EVENTS: u64 = 0;
    /// Batch sizes and shuffles: the order only.
    pub const ORDER: u64 = 1;
    /// Which seqs are holes.
    pub const HOLES: u64 = 2;
    /// Where garbage lines go.
    pub const MALFORMED: u64 = 3;
    /// Which garbage line goes there.
    pub const GARBAGE: u64 = 4;
    /// Which user ids the client connections claim.
    pub const CLIENTS: u64 = 5;
}

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    /// Advanced by [`GOLDEN`] on every draw; the output is a mix of it.
    state: u64,
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent stream number `stream` of `seed`, so that what one part
    /// of the run draws (say, batch sizes) never shifts what another draws
    /// (say, the events themselves).
    pub fn stream(seed: u64, stream: u64) -> Self {
        Rng::new(mix(seed ^ mix(stream.wrapping_add(1).wrapping_mul(GOLDEN))))
    }

    /// The next 64 uniformly distributed bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A number uniform in `0..bound` (`bound > 0`).
    ///
    /// Lemire's multiply-and-shift: no division, and the bias (below
    /// `bound / 2^64`) is far beneath anything a test could notice.
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A number uniform in `low..=high` (`low <= high`).
    #[inline]
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// Shuffles `items` in place (Fisher–Yates): every order equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let pick = self.below(last as u64 + 1) as usize;
            items.swap(last, pick);
        }
    }
}

/// The SplitMix64 finaliser: a bijective scramble of 64 bits.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = Rng::new(666);
        let mut b = Rng::new(666);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn known_splitmix64_values() {
        // Reference values of SplitMix64 seeded with 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn streams_differ() {
        let a = Rng::stream(666, 0).next_u64();
        let b = Rng::stream(666, 1).next_u64();
        assert_ne!(a, b);
        assert_eq!(a, Rng::stream(666, 0).next_u64());
    }

    #[test]
    fn between_stays_in_range_and_hits_both_ends() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = rng.between(3, 7);
            assert!((3..=7).contains(&x));
            seen[(x - 3) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = Rng::new(9);
        let mut items: Vec<u32> = (0..100).collect();
        rng.shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }
}
