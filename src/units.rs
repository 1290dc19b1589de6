//! Byte sizes as a person writes them: `64MiB`, `4 KiB`, `1024`.
//!
//! Binary units only: `B`, `KiB`, `MiB` and `GiB` (in any case, with or
//! without a space). `KB`, `MB`, `GB` and a bare `K`, `M` or `G` are
//! refused with the binary spelling suggested: they mean powers of ten to
//! some and of two to others, and a limit silently 5% off is a limit
//! gotten wrong.

/// The accepted units and the power of two each stands for.
const UNITS: [(&str, u32); 4] = [("B", 0), ("KiB", 10), ("MiB", 20), ("GiB", 30)];

/// Units refused as ambiguous, each with the binary unit to write instead.
const AMBIGUOUS: [(&str, &str); 6] = [
    ("K", "KiB"),
    ("KB", "KiB"),
    ("M", "MiB"),
    ("MB", "MiB"),
    ("G", "GiB"),
    ("GB", "GiB"),
];

/// Parses a byte size: a whole number, then optionally a binary unit. The
/// error says what is expected (clap prints it after the flag and value).
pub fn parse_bytes<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit());
    let (number, unit) = text.split_at(digits.unwrap_or(text.len()));
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err("expected a size: a whole number of bytes, optionally with a binary unit (B, KiB, MiB, GiB), as in 64MiB".into());
    }
    let too_large = || format!("{text} is too large");
    let number: u64 = number.parse().map_err(|_| too_large())?;
    let shift = match UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
    {
        Some(&(_, shift)) => shift,
        None if unit.is_empty() => 0,
        None => {
            return Err(
                match AMBIGUOUS
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                {
                    Some((_, binary)) => format!(
                        "{unit} is ambiguous (powers of ten or of two?); sizes take binary units: write {number}{binary}, or the number of bytes"
                    ),
                    None => {
                        format!("unknown unit {unit:?}: expected B, KiB, MiB or GiB, as in 64MiB")
                    }
                },
            );
        }
    };
    let bytes = number.checked_mul(1 << shift).ok_or_else(too_large)?;
    T::try_from(bytes).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Result<u64, String> {
        parse_bytes(text)
    }

    #[test]
    fn sizes_take_binary_units_as_the_readme_writes_them() {
        assert_eq!(bytes("1024"), Ok(1024));
        assert_eq!(bytes("0"), Ok(0));
        assert_eq!(bytes("32B"), Ok(32));
        assert_eq!(bytes("1KiB"), Ok(1024));
        assert_eq!(bytes("4MiB"), Ok(4 << 20));
        assert_eq!(bytes("64MiB"), Ok(64 << 20));
        assert_eq!(bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(bytes("8GiB"), Ok(8 << 30));
        assert_eq!(bytes("256mib"), Ok(256 << 20));
        assert_eq!(parse_bytes::<usize>("32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes::<i64>("8GiB"), Ok(8 << 30));
    }

    #[test]
    fn decimal_units_are_refused_with_the_binary_one_suggested() {
        for (text, suggested) in [
            ("64MB", "64MiB"),
            ("1KB", "1KiB"),
            ("2G", "2GiB"),
            ("4k", "4KiB"),
        ] {
            let err = bytes(text).unwrap_err();
            assert!(
                err.contains("ambiguous") && err.contains(suggested),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for text in ["", "MiB", "-1", "1.5MiB", "0x10"] {
            let err = bytes(text).unwrap_err();
            assert!(
                err.contains("expected") || err.contains("unit"),
                "{text:?}: {err}"
            );
        }
        assert!(bytes("12TiB").unwrap_err().contains("unknown unit \"TiB\""));
        assert!(
            bytes("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(bytes("17179869184GiB").unwrap_err().contains("too large"));
        assert!(
            parse_bytes::<u32>("4GiB")
                .unwrap_err()
                .contains("too large")
        );
    }
}
