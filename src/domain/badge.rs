//! Badge hashes: the only form in which a badge number is kept.
//!
//! A badge number exists in clear only between a reader and
//! [`hash_badge`]: the roster, both databases and every event hold the
//! keyed hash (HMAC-SHA256 with the site key).

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The keyed hash of a badge number: 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BadgeHash(String);

impl BadgeHash {
    /// Accepts a stored or configured hash (64 hex digits).
    pub fn parse(hex: &str) -> Option<BadgeHash> {
        (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| BadgeHash(hex.to_ascii_lowercase()))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl schemars::JsonSchema for BadgeHash {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BadgeHash".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The keyed hash of a badge number (HMAC-SHA-256 with the site key): 64 lowercase hex digits, never the number.",
            "type": "string",
            "pattern": "^[0-9a-f]{64}$"
        })
    }
}

impl fmt::Debug for BadgeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadgeHash({}…)", &self.0[..12])
    }
}

impl fmt::Display for BadgeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// HMAC-SHA256 of a badge number under the site key. Leading zeros are
/// dropped first, so that readers that pad ("0004242") and readers that do
/// not ("4242") give the same hash.
pub fn hash_badge(site_key: &[u8], number: &str) -> BadgeHash {
    let trimmed = number.trim().trim_start_matches('0');
    let canonical = if trimmed.is_empty() { "0" } else { trimmed };
    // Design: HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(site_key).expect("HMAC accepts any key length");
    mac.update(canonical.as_bytes());
    BadgeHash(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"demo-site-key-0123456789";

    #[test]
    fn hash_is_keyed_and_ignores_leading_zeros() {
        let a = hash_badge(KEY, "4242");
        assert_eq!(a, hash_badge(KEY, "0004242"));
        assert_ne!(a, hash_badge(KEY, "4243"));
        assert_ne!(a, hash_badge(b"another-site-key-0000", "4242"));
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.as_str().contains("4242") || a.as_str() != "4242");
        assert_eq!(BadgeHash::parse(a.as_str()), Some(a.clone()));
        assert_eq!(BadgeHash::parse("xyz"), None);
    }
}
