//! Random identifiers: Twilio-style SIDs (two letters and 32 lower-case hex digits).

use rand_core::{OsRng, RngCore};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `bytes` random bytes from the OS, as lower-case hex.
pub fn hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    let mut out = String::with_capacity(bytes * 2);
    for b in raw {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A fast generator for bulk rows (SplitMix64, seeded from the OS): 128 random bits per SID make
/// collisions among a few million rows vanishingly unlikely.
pub struct FastRng(u64);

impl FastRng {
    pub fn new() -> FastRng {
        FastRng(OsRng.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A SID with this prefix.
    pub fn sid(&mut self, prefix: &str) -> String {
        let mut out = String::with_capacity(34);
        out.push_str(prefix);
        for word in [self.next_u64(), self.next_u64()] {
            for shift in (0..16).rev() {
                out.push(char::from(HEX[((word >> (shift * 4)) & 0xf) as usize]));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_a_prefix_and_32_hex_digits() {
        let mut rng = FastRng::new();
        let sid = rng.sid("YC");
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("YC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(sid, rng.sid("YC"));
        assert_eq!(hex(3).len(), 6);
    }
}
