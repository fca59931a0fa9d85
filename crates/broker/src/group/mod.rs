//! Consumer groups: the classic group coordinator ([`coordinator`]), KIP-848 consumer groups
//! with server-side assignment ([`consumer`]), the layout of its records in
//! `__consumer_offsets` ([`records`], [`consumer_records`] for consumer groups), and the little of the consumer embedded protocol the
//! broker has to read ([`consumer_protocol`]). Handlers in `handlers/` translate requests into
//! calls on [`GroupCoordinator`].

pub mod consumer;
pub mod consumer_protocol;
pub mod consumer_records;
pub mod coordinator;
pub mod records;

pub use coordinator::{GroupCoordinator, GroupState, OFFSETS_TOPIC};
