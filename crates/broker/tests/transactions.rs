//! Transactions v2 (KIP-890) at the protocol level: a transactional Produce v12 adds its
//! partition implicitly, EndTxn v5 bumps the epoch and says so, a retried EndTxn gets the same
//! answer, and the old epoch is fenced.

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_storage::testing::build_batch;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

async fn produce_txn(c: &mut Client, tid: &str, pid: i64, epoch: i16, seq: i32, v: i16) -> i16 {
    let mut batch = build_batch(0, &[(None, Some(b"x"), 1)], pid, epoch, seq);
    runnel_storage::testing::make_transactional(&mut batch);
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(tid))))
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s("t")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])]);
    c.send(&req, v).await.responses[0].partition_responses[0].error_code
}

async fn end(c: &mut Client, tid: &str, pid: i64, epoch: i16, commit: bool) -> EndTxnResponse {
    c.send(
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(tid)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        5,
    )
    .await
}

async fn state(c: &mut Client, tid: &str) -> (String, Vec<i32>) {
    let resp = c
        .send(
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s(tid))]),
            0,
        )
        .await;
    let st = &resp.transaction_states[0];
    (
        st.transaction_state.to_string(),
        st.topics
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect(),
    )
}

#[tokio::test]
async fn transactions_v2_add_partitions_implicitly_and_bump_the_epoch_at_each_end() {
    let b = TestBroker::start(&[("transaction.state.log.num.partitions", "2")]).await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 1).await;
    let init = c
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("v2"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            5,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    // No AddPartitionsToTxn: Produce v12 adds the partition to the transaction itself.
    assert_eq!(produce_txn(&mut c, "v2", pid, epoch, 0, 12).await, 0);
    assert_eq!(state(&mut c, "v2").await, ("Ongoing".to_string(), vec![0]));
    assert_eq!(produce_txn(&mut c, "v2", pid, epoch, 1, 12).await, 0);
    let r = end(&mut c, "v2", pid, epoch, true).await;
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 1)
    );
    assert_eq!(state(&mut c, "v2").await.0, "CompleteCommit");
    // A retry of the same EndTxn (the old epoch) gets the same answer; the other result is
    // refused.
    let r = end(&mut c, "v2", pid, epoch, true).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, epoch + 1));
    let r = end(&mut c, "v2", pid, epoch, false).await;
    assert_eq!(r.error_code, 48, "INVALID_TXN_STATE");
    // The old epoch is fenced on the partition; the new one starts at sequence 0.
    assert_eq!(
        produce_txn(&mut c, "v2", pid, epoch, 2, 12).await,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(produce_txn(&mut c, "v2", pid, epoch + 1, 0, 12).await, 0);
    let r = end(&mut c, "v2", pid, epoch + 1, false).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, epoch + 2));
    assert_eq!(state(&mut c, "v2").await.0, "CompleteAbort");
    // An abort with nothing open only bumps the epoch; a commit with nothing open is refused.
    let r = end(&mut c, "v2", pid, epoch + 2, false).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, epoch + 3));
    let r = end(&mut c, "v2", pid, epoch + 3, true).await;
    assert_eq!(r.error_code, 48);
    // A stale epoch that is not a retry is fenced.
    let r = end(&mut c, "v2", pid, epoch, false).await;
    assert_eq!(
        (r.error_code, r.producer_epoch),
        (90, -1),
        "PRODUCER_FENCED"
    );
    // read_committed sees the committed records only: offsets 0-1 and the commit marker at 2;
    // the aborted record at 3 and its marker at 4.
    let lso = c
        .send(
            &ListOffsetsRequest::default()
                .with_isolation_level(1)
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ])]),
            5,
        )
        .await
        .topics[0]
        .partitions[0]
        .offset;
    assert_eq!(lso, 5);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s("t")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = c.send(&fetch, 11).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.last_stable_offset, 5);
    let aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(pid, 3)]);
}

#[tokio::test]
async fn unused_transactional_ids_expire() {
    let mut b = TestBroker::start(&[
        ("transaction.state.log.num.partitions", "2"),
        ("transactional.id.expiration.ms", "500"),
    ])
    .await;
    let mut c = b.client().await;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("short-lived"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    assert_eq!(c.send(&init, 4).await.error_code, 0);
    assert_eq!(state(&mut c, "short-lived").await.0, "Empty");
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("short-lived"))]);
    let t0 = std::time::Instant::now();
    loop {
        let code = c.send(&describe, 0).await.transaction_states[0].error_code;
        if code == 105 {
            break; // TRANSACTIONAL_ID_NOT_FOUND
        }
        assert!(t0.elapsed().as_secs() < 5, "the id never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Gone after a restart too (the tombstone is replayed).
    drop(c);
    b.restart().await;
    let mut c = b.client().await;
    let code = c.send(&describe, 0).await.transaction_states[0].error_code;
    assert_eq!(code, 105);
}

/// A broker's first producer id comes from the controller, after which the broker waits for its
/// own metadata (a raft message from the leader) to catch up. The transaction coordinator used to
/// hold its lock meanwhile: the other requests for transactional ids it coordinates then blocked
/// on that lock on the runtime's threads, and with them the raft message the wait needed, so the
/// broker stalled until a 30 s deadline (librdkafka's 0098_consumer_txn saw a node fenced). On
/// three nodes sharing two threads, producers starting all at once each get their id promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_starting_all_at_once_are_answered_promptly() {
    let cluster =
        common::TestCluster::start(3, &[("transaction.state.log.num.partitions", "6")]).await;
    cluster.wait_formed().await;
    let ports = cluster.ports.clone();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let ports = ports.clone();
        let addr = move |node: i32| -> std::net::SocketAddr {
            format!("127.0.0.1:{}", ports[2 * (node as usize - 1)])
                .parse()
                .unwrap()
        };
        tasks.push(tokio::spawn(async move {
            let tid = format!("start-{i}");
            let init = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(&tid))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let find = FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(s(&tid));
            let mut any = Client::connect(addr(1 + i % 3)).await;
            loop {
                let f = any.send(&find, 3).await;
                if f.error_code != 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
                let mut c = Client::connect(addr(f.node_id.0)).await;
                let r = c.send(&init, 4).await;
                match r.error_code {
                    0 => return r.producer_id.0,
                    // COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR,
                    // CONCURRENT_TRANSACTIONS: retried, as producers do.
                    14 | 15 | 16 | 51 => {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await
                    }
                    e => panic!("InitProducerId for {tid}: error {e}"),
                }
            }
        }));
    }
    let all = async {
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids
    };
    let mut ids = tokio::time::timeout(std::time::Duration::from_secs(15), all)
        .await
        .expect("InitProducerId not answered within 15 s: a broker stalled");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        24,
        "every transactional id has its own producer id"
    );
    cluster.shutdown().await;
}
