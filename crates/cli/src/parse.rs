//! Value parsers for the command lines (clap's `value_parser = ...`): sizes with
//! K/M/G suffixes, counts, `--batch`, octal modes. Each refuses with the library's
//! [`Error::InvalidArgument`], which the binaries report with exit code 2.

use shm_common::{Error, Result};

/// Parses a byte count: plain, or with a K/M/G suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u32> {
    let bad = || Error::InvalidArgument {
        what: "size",
        reason: format!("{text:?} is not a size (e.g. 4096, 64K, 1M)"),
    };
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let v = n.checked_mul(mult).ok_or_else(bad)?;
    u32::try_from(v).map_err(|_| Error::InvalidArgument {
        what: "size",
        reason: format!("{text} is larger than 4 GiB"),
    })
}

/// Parses a count such as `--slots`: a plain positive decimal number.
pub fn parse_count(text: &str) -> Result<u32> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| Error::InvalidArgument {
            what: "count",
            reason: format!("{text:?} is not a whole number from 0 to 4294967295"),
        })
}

/// Parses `--batch`: how many frames one `semop` may move, 1..=32767 (a `sem_op`
/// is a signed 16-bit number).
pub fn parse_batch(text: &str) -> Result<u32> {
    match parse_count(text)? {
        n @ 1..=32767 => Ok(n),
        n => Err(Error::InvalidArgument {
            what: "--batch",
            reason: format!("{n} is outside 1..=32767"),
        }),
    }
}

/// Parses permission bits in octal (`600`, `0640`); only the 0o777 bits are allowed.
pub fn parse_mode(text: &str) -> Result<u32> {
    let t = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o777 && m & 0o600 == 0o600 => Ok(m),
        Ok(_) => Err(Error::InvalidArgument {
            what: "mode",
            reason: format!("{text} must be octal, at most 777, and keep the owner's rw (600)"),
        }),
        Err(_) => Err(Error::InvalidArgument {
            what: "mode",
            reason: format!("{text:?} is not an octal mode such as 600 or 660"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("64K").ok(), Some(65536));
        assert_eq!(parse_size("1m").ok(), Some(1 << 20));
        assert!(parse_size("4G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("junk").is_err());
        assert!(parse_size("99999999999999999999K").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600").ok(), Some(0o600));
        assert_eq!(parse_mode("0666").ok(), Some(0o666));
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("400").is_err());
        assert!(parse_mode("9").is_err());
    }
}
