//! Interface names.
//!
//! The kernel names every network device with a short C string of at most
//! `IFNAMSIZ - 1` = 15 bytes. `dev_valid_name()` in `net/core/dev.c` also
//! refuses the names `.` and `..` (they would clash with entries in
//! `/sys/class/net`), and any name holding `/`, `:` (reserved for old-style
//! aliases such as `eth0:1`) or whitespace.

use crate::error::{Error, Result};

/// The longest interface name the kernel accepts, in bytes (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;

/// Checks `name` against the kernel's rules for interface names, so that a
/// bad name fails early with a clear message instead of an `EINVAL` from the
/// kernel.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |reason: &'static str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > IFNAME_MAX {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if name.contains('/') {
        return bad("contains `/`");
    }
    if name.contains(':') {
        return bad("contains `:` (reserved for aliases)");
    }
    if name.chars().any(|c| c.is_whitespace()) {
        return bad("contains whitespace");
    }
    if name.contains('\0') {
        return bad("contains a nul byte");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "lo",
            "eth0",
            "wbbr0",
            "veth1a2b3c",
            "a",
            "wb-0123456789ab",
            "a..b",
            "br.10",
        ] {
            validate_ifname(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        // exactly 15 bytes is the maximum
        validate_ifname("abcdefghijklmno").unwrap();
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        let cases = [
            ("", "empty"),
            ("abcdefghijklmnop", "longer than 15 bytes"),
            (".", "reserved"),
            ("..", "reserved"),
            ("a/b", "`/`"),
            ("eth0:1", "`:`"),
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("a\0", "nul"),
        ];
        for (name, reason) in cases {
            let err = validate_ifname(name).expect_err(name);
            assert!(matches!(err, Error::InvalidName { .. }), "{name}: {err:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("invalid interface name"), "{msg}");
            assert!(msg.contains(reason), "{name}: {msg}");
        }
    }

    #[test]
    fn length_counts_bytes_not_chars() {
        // 8 two-byte characters = 16 bytes: too long for IFNAMSIZ
        assert!(validate_ifname("éééééééé").is_err());
        assert!(validate_ifname("ééééééé").is_ok());
    }
}
