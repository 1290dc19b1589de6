//! The event mix: how often each kind of event is drawn.
//!
//! The default is the original test client's, as its published 10 M-event
//! logs show it; `fanout` is broadcast-heavy for fan-out benchmarks; any
//! other mix is given as explicit weights, e.g. `B=1,F=30,U=10,P=10,S=49`.

use std::fmt;
use std::str::FromStr;

/// The five kinds of event, in the order weights are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `seq|B`: every connected client.
    Broadcast,
    /// `seq|F|from|to`: `to` is notified, `from` follows `to`.
    Follow,
    /// `seq|U|from|to`: nobody is notified, the follow ends.
    Unfollow,
    /// `seq|P|from|to`: `to` is notified.
    Private,
    /// `seq|S|from`: every current follower of `from`.
    Status,
}

impl Kind {
    /// Every kind, in weight order (B, F, U, P, S).
    pub const ALL: [Kind; 5] = [
        Kind::Broadcast,
        Kind::Follow,
        Kind::Unfollow,
        Kind::Private,
        Kind::Status,
    ];

    /// The letter of the kind on the wire.
    pub fn letter(self) -> u8 {
        match self {
            Kind::Broadcast => b'B',
            Kind::Follow => b'F',
            Kind::Unfollow => b'U',
            Kind::Private => b'P',
            Kind::Status => b'S',
        }
    }
}

/// Relative weights of the five kinds, with the cut points that turn 32
/// random bits into a kind with one or two comparisons.
///
/// Two mixes are equal when they draw the same kinds from the same bits,
/// whatever scale their weights were written in.
#[derive(Debug, Clone, Copy, Eq)]
pub struct Mix {
    /// Weights in [`Kind::ALL`] order, in parts per million of the total.
    weights: [u64; 5],
    /// `cuts[i]`: the 32-bit draw below which kind `i` (or an earlier one) is
    /// chosen; cumulative weights scaled to `2^32`.
    cuts: [u64; 5],
}

impl Mix {
    /// The original client's mix: B 0.01 %, F 15 %, U 15 %, P 15 %,
    /// S 54.99 %.
    pub fn original() -> Mix {
        Mix::from_weights([100, 150_000, 150_000, 150_000, 549_900])
            .expect("the original mix has weight")
    }

    /// Broadcast-heavy, for fan-out benchmarks: B 10 %, F 30 %, U 10 %,
    /// P 10 %, S 40 %.
    pub fn fanout() -> Mix {
        Mix::from_weights([10, 30, 10, 10, 40]).expect("the fanout mix has weight")
    }

    /// A mix from relative weights in [`Kind::ALL`] order; `None` when they
    /// are all zero.
    pub fn from_weights(weights: [u64; 5]) -> Option<Mix> {
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut cuts = [0u64; 5];
        let mut running = 0u64;
        for (cut, weight) in cuts.iter_mut().zip(weights) {
            running += weight;
            *cut = ((u128::from(running) << 32) / u128::from(total)) as u64;
        }
        Some(Mix { weights, cuts })
    }

    /// The kind for 32 uniformly random bits (in the low half of `bits`).
    #[inline]
    pub fn pick(&self, bits: u32) -> Kind {
        let bits = u64::from(bits);
        // Status is the common case in the default mix; test it first.
        if bits >= self.cuts[3] {
            return Kind::Status;
        }
        if bits < self.cuts[0] {
            Kind::Broadcast
        } else if bits < self.cuts[1] {
            Kind::Follow
        } else if bits < self.cuts[2] {
            Kind::Unfollow
        } else {
            Kind::Private
        }
    }

    /// The share of `kind` in the mix, between 0 and 1.
    pub fn share(&self, kind: Kind) -> f64 {
        let at = Kind::ALL
            .iter()
            .position(|&k| k == kind)
            .expect("ALL holds every kind");
        self.weights[at] as f64 / self.weights.iter().sum::<u64>() as f64
    }
}

impl PartialEq for Mix {
    fn eq(&self, other: &Mix) -> bool {
        self.cuts == other.cuts
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix::original()
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, kind) in Kind::ALL.iter().enumerate() {
            if at > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{}={:.2}%",
                kind.letter() as char,
                self.share(*kind) * 100.0
            )?;
        }
        Ok(())
    }
}

impl FromStr for Mix {
    type Err = String;

    /// `original` (or `default`), `fanout`, or weights such as
    /// `B=0.01,F=15,U=15,P=15,S=54.99` (kinds left out weigh 0).
    fn from_str(text: &str) -> Result<Mix, String> {
        match text.trim() {
            "original" | "default" => return Ok(Mix::original()),
            "fanout" => return Ok(Mix::fanout()),
            _ => {}
        }
        let mut weights = [0u64; 5];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected KIND=WEIGHT, e.g. B=10"))?;
            let at = Kind::ALL
                .iter()
                .position(|k| {
                    name.trim()
                        .eq_ignore_ascii_case(&(k.letter() as char).to_string())
                })
                .ok_or_else(|| format!("`{name}`: unknown kind (expected B, F, U, P or S)"))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|e| format!("`{value}`: not a number: {e}"))?;
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("`{value}`: a weight must be zero or more"));
            }
            // Millionths keep two decimals of a percentage exact.
            weights[at] = (value * 1_000_000.0).round() as u64;
        }
        Mix::from_weights(weights).ok_or_else(|| {
            format!(
                "`{text}`: expected `original`, `fanout` or weights like B=1,F=30,U=10,P=10,S=49"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_mixes_parse() {
        assert_eq!("original".parse::<Mix>(), Ok(Mix::original()));
        assert_eq!("fanout".parse::<Mix>(), Ok(Mix::fanout()));
        assert!((Mix::original().share(Kind::Broadcast) - 0.0001).abs() < 1e-12);
        assert!((Mix::fanout().share(Kind::Broadcast) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn explicit_weights_parse_and_missing_kinds_weigh_nothing() {
        let mix: Mix = "B=1, f=3".parse().expect("valid weights");
        assert!((mix.share(Kind::Broadcast) - 0.25).abs() < 1e-12);
        assert!((mix.share(Kind::Follow) - 0.75).abs() < 1e-12);
        assert_eq!(mix.share(Kind::Status), 0.0);
        let same: Mix = "B=0.01,F=15,U=15,P=15,S=54.99".parse().expect("valid");
        assert_eq!(same, Mix::original());
    }

    #[test]
    fn bad_weights_are_rejected_with_a_reason() {
        for bad in ["", "B", "X=1", "B=-1", "B=x", "B=0,S=0", "B=inf"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn pick_covers_the_range_by_weight() {
        let mix = Mix::from_weights([1, 1, 1, 1, 0]).expect("has weight");
        assert_eq!(mix.pick(0), Kind::Broadcast);
        assert_eq!(mix.pick(u32::MAX / 4 + 1), Kind::Follow);
        assert_eq!(mix.pick(u32::MAX / 2 + 1), Kind::Unfollow);
        assert_eq!(mix.pick(u32::MAX), Kind::Private);
        let only_status = Mix::from_weights([0, 0, 0, 0, 5]).expect("has weight");
        assert_eq!(only_status.pick(0), Kind::Status);
        assert_eq!(only_status.pick(u32::MAX), Kind::Status);
    }
}
