//! Integer hashing for the price path: SplitMix64 (Steele, Lea, Flood 2014), used as a keyed hash rather than as a
//! sequential generator, so any (seed, symbol, scale, bucket) can be looked up directly.
//!
//! Hand-written on purpose: the usual crates (rand, rand_chacha, noise) are sequential generators or `f64` noise;
//! none gives seeded O(1) random access whose output is bit-identical on every platform, which the parity rule needs.

/// SplitMix64's increment (2^64 / golden ratio), the standard constant of the algorithm.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One SplitMix64 step: a bijective avalanche of `x` (every input bit affects every output bit).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds one more word into a running hash.
pub(crate) fn mix(state: u64, word: u64) -> u64 {
    splitmix64(state ^ splitmix64(word))
}

/// Hash of (seed, symbol bytes): the per-symbol key every other draw starts from.
pub(crate) fn symbol_key(seed: u64, symbol: &str) -> u64 {
    let bytes = symbol.as_bytes();
    // The length goes in first so "AB" and "AB\0" (padded chunks) cannot collide.
    let mut state = mix(seed, bytes.len() as u64);
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        state = mix(state, u64::from_le_bytes(word));
    }
    state
}

/// A value uniformly spread over `-amplitude..=amplitude` (modulo bias below 2^-30 for our amplitudes: irrelevant).
pub(crate) fn signed_unit(hash: u64, amplitude: i128) -> i128 {
    debug_assert!(amplitude >= 0);
    let span = (2 * amplitude + 1) as u128;
    (u128::from(hash) % span) as i128 - amplitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Reference outputs of SplitMix64 seeded with 0 (state += gamma before each mix), from the original paper's
        // Java implementation; guards against an accidental change of a constant.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(
            splitmix64(GOLDEN_GAMMA),
            0x6E78_9E6A_A1B9_65F4,
            "second output"
        );
    }

    #[test]
    fn symbol_keys_differ_by_seed_symbol_and_padding() {
        assert_ne!(symbol_key(1, "BTC-USD"), symbol_key(2, "BTC-USD"));
        assert_ne!(symbol_key(1, "BTC-USD"), symbol_key(1, "ETH-USD"));
        assert_ne!(symbol_key(1, "AB"), symbol_key(1, "AB\0"));
    }

    #[test]
    fn signed_unit_stays_in_range() {
        for h in [0, 1, u64::MAX, 12_345_678_901] {
            let v = signed_unit(h, 5);
            assert!((-5..=5).contains(&v), "{v}");
        }
    }
}
