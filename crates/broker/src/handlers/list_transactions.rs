//! ListTransactions (key 66): transactional ids, filtered by state, producer id (v0+) and by
//! how long they have been open (v1+).

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::{sb, RequestContext};
use crate::broker::now_ms;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Every state name a filter may use.
const STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// Handles ListTransactions.
pub fn handle(ctx: &RequestContext, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let unknown: Vec<_> = states
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .map(|s| sb(s.clone()))
        .collect();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let min_open_ms = if ctx.api_version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let now = now_ms();
    let listed = ctx
        .broker
        .txns
        .list()
        .into_iter()
        .filter(|(_, _, state, _)| states.is_empty() || states.iter().any(|s| s == state))
        .filter(|(_, pid, _, _)| pids.is_empty() || pids.contains(pid))
        // As Kafka: kept unless started within the filter (an id with no start time, -1, is kept).
        .filter(|(_, _, _, start)| min_open_ms < 0 || now - start > min_open_ms)
        // As Kafka: only the transactional ids the principal may describe.
        .filter(|(id, _, _, _)| ctx.allowed(Op::Describe, Rt::TransactionalId, id))
        .map(|(id, pid, state, _)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(sb(id)))
                .with_producer_id(ProducerId(pid))
                .with_transaction_state(sb(state))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
