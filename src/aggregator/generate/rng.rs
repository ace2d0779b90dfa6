//! The generator's randomness: a small seeded PRNG (splitmix64), so that
//! one seed always gives the same history, and the ids it makes from it
//! (UUID v7 with the event's own time, so ids sort like real ones).

use chrono::{DateTime, Utc};

/// splitmix64: one `u64` of state, fast, and good enough to make a plant
/// look busy. Not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent generator for the `stream`-th part of the plan (a
    /// board, the roster), so that each part's draws do not depend on how
    /// many the others made.
    pub fn fork(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A UUID v7 stamped with `at`, its other bits from this generator.
    pub fn uuid_at(&mut self, at: DateTime<Utc>) -> uuid::Uuid {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes()[..2]);
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_one_sequence_and_forks_differ() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        let mut r = Rng::new(7);
        assert_eq!(r.next_u64(), a[0]);
        let (mut x, mut y) = (Rng::fork(7, 1), Rng::fork(7, 2));
        assert_ne!(x.next_u64(), y.next_u64());
        let mut r = Rng::new(3);
        for _ in 0..1000 {
            let v = r.range(-2, 4);
            assert!((-2..=4).contains(&v));
            assert!((0.0..1.0).contains(&r.unit()));
        }
    }

    #[test]
    fn ids_are_version_7_and_carry_the_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T06:45:03.120Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Rng::new(1).uuid_at(at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id, Rng::new(1).uuid_at(at));
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos / 1_000_000), (at.timestamp() as u64, 120));
    }
}
