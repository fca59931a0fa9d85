//! Builders for tests (here and in the broker's tests): uncompressed v2 record batches with a
//! valid CRC.

use crate::batch::finish_batch;
pub use crate::batch::{build_batch, SimpleRecord as TestRecord};

/// Marks a batch built by [`build_batch`] transactional, CRC redone.
pub fn make_transactional(batch: &mut [u8]) {
    batch[crate::batch::ATTRIBUTES_AT + 1] |= crate::batch::ATTR_TRANSACTIONAL as u8;
    finish_batch(batch);
}

/// A small seeded generator (splitmix64) for tests and simulations: one seed, one sequence,
/// on every platform.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// True `per_mille` times in a thousand.
    pub fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `xs`, uniformly; None when it is empty.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> Option<T> {
        (!xs.is_empty()).then(|| xs[self.below(xs.len() as u64) as usize])
    }
}
