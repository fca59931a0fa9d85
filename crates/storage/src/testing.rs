//! Builders for tests (here and in the broker's tests): uncompressed v2 record batches with a
//! valid CRC.

use crate::batch::finish_batch;
pub use crate::batch::{build_batch, SimpleRecord as TestRecord};

/// Marks a batch built by [`build_batch`] transactional, CRC redone.
pub fn make_transactional(batch: &mut [u8]) {
    batch[crate::batch::ATTRIBUTES_AT + 1] |= crate::batch::ATTR_TRANSACTIONAL as u8;
    finish_batch(batch);
}
