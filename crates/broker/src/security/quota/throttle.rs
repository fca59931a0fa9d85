//! The throttle plumbing of the request path, in Kafka's order (KafkaApis' produce and fetch
//! callbacks, `RequestHandlerHelper.sendResponseMaybeThrottle`): once a request is handled its
//! values are recorded (Produce: the request's bytes against `producer_byte_rate` and, unless
//! acks=0, its handling time against `request_percentage`; a consumer's Fetch: the handling time,
//! then the response's bytes against `consumer_byte_rate`; any other client request: the handling
//! time), the larger throttle time goes into the response's `throttle_time_ms`, a throttled
//! consumer fetch is answered empty with its bytes taken back, and the connection is then muted
//! for the throttle time ([`crate::handlers::Outcome::Throttled`]). Follower fetches and
//! inter-broker requests (WriteTxnMarkers) are exempt, as Kafka's cluster actions are.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::Encodable;

use super::{clock_ms, identity, QuotaManagers};
use crate::handlers::RequestContext;

thread_local! {
    /// While a [`timed`] future is polled: when this poll began and the time of earlier polls.
    static POLL: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// Runs `f`, keeping count of the time it spends being polled (running, not waiting for the
/// ISR, a long poll or a rebalance), which [`busy_so_far`] reads from inside it: Runnel's
/// counterpart of the request handler thread time Kafka's request quota measures.
pub async fn timed<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut busy = Duration::ZERO;
    poll_fn(|cx| {
        let start = Instant::now();
        let outer = POLL.with(|p| p.replace(Some((start, busy))));
        let r = f.as_mut().poll(cx);
        POLL.with(|p| p.set(outer));
        busy += start.elapsed();
        r
    })
    .await
}

/// The time the enclosing [`timed`] future has been running so far (zero outside one).
pub fn busy_so_far() -> Duration {
    POLL.with(|p| {
        p.get()
            .map_or(Duration::ZERO, |(start, before)| before + start.elapsed())
    })
}

/// What the throttling needs to know of a request before its handler consumes it.
pub struct RequestFacts {
    /// A Produce request's acks.
    acks: Option<i16>,
    /// A Fetch from a consumer (not from a follower replica).
    consumer_fetch: bool,
    /// Exempt from client quotas (follower fetches, inter-broker requests).
    exempt: bool,
}

impl RequestFacts {
    /// The facts of `req` (at `api_version`).
    pub fn of(api_version: i16, req: &RequestKind) -> RequestFacts {
        let mut facts = RequestFacts {
            acks: None,
            consumer_fetch: false,
            exempt: false,
        };
        match req {
            RequestKind::Produce(r) => facts.acks = Some(r.acks),
            RequestKind::Fetch(r) => {
                let replica = if api_version >= 15 {
                    r.replica_state.replica_id.0
                } else {
                    r.replica_id.0
                };
                facts.consumer_fetch = replica < 0;
                facts.exempt = replica >= 0;
            }
            RequestKind::WriteTxnMarkers(_) => facts.exempt = true,
            _ => {}
        }
        facts
    }
}

macro_rules! set_throttle_time {
    ($resp:expr, $ms:expr, $($v:ident),* $(,)?) => {
        match $resp {
            $(ResponseKind::$v(r) => r.throttle_time_ms = $ms,)*
            _ => {}
        }
    };
}

/// Sets `throttle_time_ms` in a response that has it.
fn set_throttle_time_ms(resp: &mut ResponseKind, ms: i32) {
    set_throttle_time!(
        resp,
        ms,
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        DescribeConfigs,
        AlterConfigs,
        AlterReplicaLogDirs,
        DescribeLogDirs,
        CreatePartitions,
        DeleteGroups,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        OffsetDelete,
        DescribeClientQuotas,
        AlterClientQuotas,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        UpdateFeatures,
        DescribeCluster,
        DescribeProducers,
        UnregisterBroker,
        DescribeTransactions,
        ListTransactions,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        DescribeTopicPartitions,
        AddRaftVoter,
        RemoveRaftVoter,
    );
}

/// Records a handled request against the client's quotas, sets `throttle_time_ms` in its
/// response (emptying a throttled consumer fetch) and returns the throttle time in ms, after
/// which the connection may read again (0: not throttled).
pub fn throttle(
    ctx: &RequestContext,
    facts: &RequestFacts,
    request_bytes: usize,
    response: &mut Option<ResponseKind>,
) -> u64 {
    let image = ctx.broker.image();
    if facts.exempt || !QuotaManagers::any(&image) {
        return 0;
    }
    let quotas = &ctx.broker.quotas;
    let (user, client_id) = identity(&ctx.principal, ctx.client_id.as_deref());
    let now = clock_ms();
    // Kafka's request quota: handler time in nanoseconds, as percent-seconds of one thread.
    let busy_percent = busy_so_far().as_nanos() as f64 * 100.0 / 1e9;
    let request_time = |quotas: &QuotaManagers| {
        quotas
            .request
            .record_and_get_throttle_ms(&image, user, client_id, busy_percent, now)
    };
    let throttle_ms = match (facts.acks, response.as_mut()) {
        (Some(acks), _) => {
            let bandwidth = quotas.produce.record_and_get_throttle_ms(
                &image,
                user,
                client_id,
                request_bytes as f64,
                now,
            );
            let request = if acks == 0 { 0 } else { request_time(quotas) };
            bandwidth.max(request)
        }
        (None, Some(ResponseKind::Fetch(fetch))) if facts.consumer_fetch => {
            let request = request_time(quotas);
            let size = 4 + fetch.compute_size(ctx.api_version).unwrap_or(0);
            let bandwidth =
                quotas
                    .fetch
                    .record_and_get_throttle_ms(&image, user, client_id, size as f64, now);
            let ms = bandwidth.max(request);
            if ms > 0 {
                // The response goes out empty: its bytes are not charged.
                quotas
                    .fetch
                    .record_no_throttle(&image, user, client_id, -(size as f64), now);
                *fetch = FetchResponse::default()
                    .with_error_code(0)
                    .with_session_id(fetch.session_id);
            }
            ms
        }
        _ => request_time(quotas),
    };
    if throttle_ms > 0 {
        if let Some(resp) = response.as_mut() {
            set_throttle_time_ms(resp, throttle_ms.min(i32::MAX as u64) as i32);
        }
        tracing::debug!(
            user,
            client_id,
            throttle_ms,
            "client quota violated: response throttled"
        );
    }
    throttle_ms
}

/// The most bytes a consumer's fetch may ask for: its `max_bytes`, capped at what one quota
/// window of its `consumer_byte_rate` allows (Kafka's `getMaxValueInQuotaWindow`), so that a
/// fetch is never throttled for sure.
pub fn fetch_max_bytes(ctx: &RequestContext, max_bytes: i32) -> i32 {
    let image = ctx.broker.image();
    if !QuotaManagers::any(&image) {
        return max_bytes;
    }
    let (user, client_id) = identity(&ctx.principal, ctx.client_id.as_deref());
    match ctx
        .broker
        .quotas
        .fetch
        .max_value_in_window(&image, user, client_id)
    {
        Some(cap) => max_bytes.min(cap.min(i32::MAX as f64) as i32),
        None => max_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_time_spent_running_counts() {
        let busy = timed(async {
            std::thread::sleep(Duration::from_millis(30));
            tokio::time::sleep(Duration::from_millis(200)).await;
            busy_so_far()
        })
        .await;
        assert!(
            busy >= Duration::from_millis(30) && busy < Duration::from_millis(150),
            "{busy:?}"
        );
        assert_eq!(busy_so_far(), Duration::ZERO);
    }
}
