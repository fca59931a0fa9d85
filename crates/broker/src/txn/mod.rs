//! Transactions: the transaction coordinator ([`coordinator`]) and the layout of its records in
//! `__transaction_state` ([`records`]). The partition side (open transactions, markers, the last
//! stable offset and the aborted-transaction index) lives in `runnel_storage::log`.

pub mod coordinator;
pub mod records;

pub use coordinator::{TxnCoordinator, TRANSACTION_STATE_TOPIC};
