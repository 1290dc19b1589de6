//! A counting filter of user ids: "certainly absent" in one load.
//!
//! The router looks up, for almost every event, whether a user is connected
//! (the recipient of a Follow or Private, each follower of a Status's
//! sender), and in a typical stream most are not. A miss in the directory
//! still costs a hash and a probe. An [`IdFilter`] beside the map counts its
//! keys by bucket, so a lookup whose bucket is empty is answered without
//! touching the map. A bucket shared with a present key only means the map
//! is asked.
//!
//! The follower graph has no such filter in front of it: in the default
//! run most Status senders do have followers, so it would cost more than
//! it saves.

use crate::engine::protocol::UserId;

/// Buckets: 16 KiB of counts, small enough to stay in the first-level
/// cache beside the hot path's other data.
const BUCKETS: usize = 4096;

/// Counts of keys by bucket, kept beside a map by its owner: [`IdFilter::add`]
/// when a key goes in, [`IdFilter::remove`] when it comes out.
#[derive(Debug)]
pub(crate) struct IdFilter {
    /// Keys present in each bucket.
    counts: Box<[u32]>,
}

impl Default for IdFilter {
    fn default() -> Self {
        IdFilter {
            counts: vec![0; BUCKETS].into_boxed_slice(),
        }
    }
}

impl IdFilter {
    /// The bucket of `id`: the top bits of a multiplicative hash.
    pub(crate) fn bucket(id: UserId) -> usize {
        const SHIFT: u32 = 64 - BUCKETS.trailing_zeros();
        (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> SHIFT) as usize
    }

    /// False only when `id` is certainly absent.
    #[inline]
    pub(crate) fn may_contain(&self, id: UserId) -> bool {
        self.counts[Self::bucket(id)] > 0
    }

    /// `id` went into the map.
    pub(crate) fn add(&mut self, id: UserId) {
        self.counts[Self::bucket(id)] += 1;
    }

    /// `id` came out of the map.
    pub(crate) fn remove(&mut self, id: UserId) {
        self.counts[Self::bucket(id)] -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_only_when_its_last_key_leaves() {
        let first = 7;
        let second = (first + 1..)
            .find(|&id| IdFilter::bucket(id) == IdFilter::bucket(first))
            .expect("another id shares a bucket soon");
        let mut filter = IdFilter::default();
        assert!(!filter.may_contain(first));
        filter.add(first);
        filter.add(second);
        filter.remove(first);
        assert!(filter.may_contain(second), "a shared bucket still answers");
        filter.remove(second);
        assert!(!filter.may_contain(second));
        assert!(!filter.may_contain(first));
    }
}
