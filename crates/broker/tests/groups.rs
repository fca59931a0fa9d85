//! The group coordinator's rules at the protocol level: rebalances that wait for members, session
//! and rebalance timeouts, the errors members get (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
//! REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID, INVALID_SESSION_TIMEOUT,
//! INCONSISTENT_GROUP_PROTOCOL), static members, offset retention, and state across a restart.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

const JOIN_V: i16 = 9;

fn join_req(
    group: &str,
    member: &str,
    instance: Option<&str>,
    session_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"meta"))])
}

/// Joins as a new dynamic member (two rounds: MEMBER_ID_REQUIRED first).
async fn join_new(c: &mut Client, group: &str, session_ms: i32) -> JoinGroupResponse {
    let first = c.send(&join_req(group, "", None, session_ms), JOIN_V).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    c.send(&join_req(group, &first.member_id, None, session_ms), JOIN_V)
        .await
}

async fn sync(
    c: &mut Client,
    group: &str,
    gen: i32,
    member: &str,
    leader: bool,
) -> SyncGroupResponse {
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(gen)
        .with_member_id(s(member));
    if leader {
        req = req.with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(member))
                .with_assignment(Bytes::from(format!("for {member}"))),
        ]);
    }
    c.send(&req, 5).await
}

async fn heartbeat(c: &mut Client, group: &str, gen: i32, member: &str) -> i16 {
    c.send(
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(gen)
            .with_member_id(s(member)),
        4,
    )
    .await
    .error_code
}

async fn describe(c: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    c.send(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
        5,
    )
    .await
    .groups
    .remove(0)
}

fn commit_req(group: &str, gen: i32, member: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(gen)
        .with_member_id(s(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s("m"))),
                ]),
        ])
}

async fn fetch_offset(c: &mut Client, group: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![0]),
        ]));
    c.send(&req, 7).await.topics[0].partitions[0].committed_offset
}

async fn start() -> TestBroker {
    let b = TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("offsets.topic.num.partitions", "2"),
        ("offsets.retention.check.interval.ms", "100"),
    ])
    .await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 1).await;
    b
}

#[tokio::test]
async fn rebalance_waits_for_members_and_evicts_the_silent_ones() {
    let b = start().await;
    let (mut a, mut a2) = (b.client().await, b.client().await);
    let joined = join_new(&mut a, "g", 6000).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let ma = joined.member_id.to_string();
    assert_eq!(sync(&mut a, "g", 1, &ma, true).await.error_code, 0);
    // B joins: the group waits for A to rejoin; A learns of it through its heartbeat.
    let addr = b.addr;
    let bjoin = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let r = join_new(&mut c, "g", 6000).await;
        (c, r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        describe(&mut a2, "g").await.group_state.as_str(),
        "PreparingRebalance"
    );
    assert_eq!(
        heartbeat(&mut a, "g", 1, &ma).await,
        27,
        "REBALANCE_IN_PROGRESS"
    );
    // An old generation's commit is still accepted while rebalancing (Kafka does the same)...
    let resp = a.send(&commit_req("g", 1, &ma, 5), 8).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let rejoin = a.send(&join_req("g", &ma, None, 6000), JOIN_V).await;
    let (mut bc, bj) = bjoin.await.unwrap();
    assert_eq!((rejoin.error_code, rejoin.generation_id), (0, 2));
    assert_eq!((bj.error_code, bj.generation_id), (0, 2));
    assert_eq!(
        rejoin.leader.as_str(),
        ma,
        "the first member stays the leader"
    );
    assert_eq!(rejoin.members.len(), 2, "the leader sees every member");
    assert!(bj.members.is_empty(), "followers see no member list");
    let mb = bj.member_id.to_string();
    // ...but a stale generation is refused once the new one exists.
    assert_eq!(
        heartbeat(&mut a, "g", 1, &ma).await,
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        heartbeat(&mut a, "g", 2, "nobody").await,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    // The follower's SyncGroup waits for the leader's.
    let follower = tokio::spawn(async move {
        let r = sync(&mut bc, "g", 2, &mb, false).await;
        (bc, mb, r)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lr = sync(&mut a, "g", 2, &ma, true).await;
    let (mut bc, mb, fr) = follower.await.unwrap();
    assert_eq!(
        (lr.error_code, &lr.assignment[..]),
        (0, format!("for {ma}").as_bytes())
    );
    assert_eq!(
        (fr.error_code, fr.assignment.len()),
        (0, 0),
        "nothing assigned to B"
    );
    assert_eq!(describe(&mut a2, "g").await.group_state.as_str(), "Stable");
    // B stops heartbeating: after its 6 s session it is removed and A must rejoin alone.
    let t0 = Instant::now();
    loop {
        let e = heartbeat(&mut a, "g", 2, &ma).await;
        if e == 27 {
            break;
        }
        assert_eq!(e, 0);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "B was never evicted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(5500),
        "evicted before its session ended"
    );
    let rejoin = a.send(&join_req("g", &ma, None, 6000), JOIN_V).await;
    assert_eq!(
        (
            rejoin.error_code,
            rejoin.generation_id,
            rejoin.members.len()
        ),
        (0, 3, 1)
    );
    assert_eq!(
        heartbeat(&mut bc, "g", 2, &mb).await,
        25,
        "B is gone: UNKNOWN_MEMBER_ID"
    );
}

#[tokio::test]
async fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let b = start().await;
    let mut a = b.client().await;
    // Session 6 s doubles as the rebalance timeout here.
    let ja = join_new(&mut a, "rt", 6000).await;
    let ma = ja.member_id.to_string();
    assert_eq!(sync(&mut a, "rt", 1, &ma, true).await.error_code, 0);
    let mut c = b.client().await;
    let t0 = Instant::now();
    // A never rejoins (nor heartbeats): B's join completes when the rebalance times out.
    let jb = join_new(&mut c, "rt", 6000).await;
    let waited = t0.elapsed();
    assert_eq!(
        (jb.error_code, jb.generation_id, jb.members.len()),
        (0, 2, 1)
    );
    assert_eq!(jb.leader, jb.member_id, "B leads once A is gone");
    assert!(
        waited >= Duration::from_millis(5500) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
    let rejoin = a.send(&join_req("rt", &ma, None, 6000), JOIN_V).await;
    assert_eq!(rejoin.error_code, 25, "A was removed: UNKNOWN_MEMBER_ID");
}

#[tokio::test]
async fn join_is_validated() {
    let b = start().await;
    let mut c = b.client().await;
    let r = c.send(&join_req("v", "", None, 10), JOIN_V).await;
    assert_eq!(
        r.error_code, 26,
        "INVALID_SESSION_TIMEOUT below group.min.session.timeout.ms"
    );
    let r = c.send(&join_req("v", "", None, 1_800_001), JOIN_V).await;
    assert_eq!(
        r.error_code, 26,
        "INVALID_SESSION_TIMEOUT above the maximum"
    );
    let r = c.send(&join_req("", "", None, 6000), JOIN_V).await;
    assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
    let r = c.send(&join_req("v", "made-up", None, 6000), JOIN_V).await;
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID for an unknown group");
    let j = join_new(&mut c, "v", 6000).await;
    assert_eq!(j.error_code, 0);
    // A second member speaking another protocol is refused.
    let mut other = join_req("v", "", None, 6000).with_protocols(vec![
        join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s("roundrobin"))
            .with_metadata(Bytes::new()),
    ]);
    other.protocol_type = s("consumer");
    let mut c2 = b.client().await;
    let r = c2.send(&other, JOIN_V).await;
    assert_eq!(r.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // Offsets: a commit with an unknown generation of an unknown group is refused...
    let r = c.send(&commit_req("nogroup", 3, "x", 1), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    let r = c.send(&commit_req("nogroup", 3, "x", 1), 9).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 69,
        "GROUP_ID_NOT_FOUND from v9"
    );
    // ...a standalone commit to a group with members too...
    let r = c.send(&commit_req("v", -1, "", 1), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 25,
        "UNKNOWN_MEMBER_ID"
    );
    // ...and metadata longer than offset.metadata.max.bytes.
    let mut big = commit_req("solo", -1, "", 1);
    big.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(4097)));
    let r = c.send(&big, 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 12,
        "OFFSET_METADATA_TOO_LARGE"
    );
    let mut unknown = commit_req("solo", -1, "", 1);
    unknown.topics[0].name = TopicName(s("no-such-topic"));
    let r = c.send(&unknown, 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

#[tokio::test]
async fn static_member_rejoins_without_a_rebalance_and_fences_its_old_self() {
    let b = start().await;
    let mut c = b.client().await;
    // Static members skip the MEMBER_ID_REQUIRED round.
    let j = c
        .send(&join_req("st", "", Some("inst-1"), 10_000), JOIN_V)
        .await;
    assert_eq!((j.error_code, j.generation_id), (0, 1));
    let old = j.member_id.to_string();
    assert!(old.starts_with("inst-1-"), "{old}");
    assert_eq!(sync(&mut c, "st", 1, &old, true).await.error_code, 0);
    // A restart: same instance id, no member id. Same generation, no rebalance; as the leader
    // (v9) it is told to skip the assignment.
    let mut c2 = b.client().await;
    let j2 = c2
        .send(&join_req("st", "", Some("inst-1"), 10_000), JOIN_V)
        .await;
    assert_eq!((j2.error_code, j2.generation_id), (0, 1));
    assert!(j2.skip_assignment);
    let new = j2.member_id.to_string();
    assert_ne!(new, old);
    let r = sync(&mut c2, "st", 1, &new, false).await;
    assert_eq!(
        (r.error_code, &r.assignment[..]),
        (0, format!("for {old}").as_bytes())
    );
    assert_eq!(describe(&mut c2, "st").await.group_state.as_str(), "Stable");
    // The old instance is fenced.
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(s("st")))
        .with_generation_id(1)
        .with_member_id(s(&old))
        .with_group_instance_id(Some(s("inst-1")));
    assert_eq!(c.send(&hb, 4).await.error_code, 82, "FENCED_INSTANCE_ID");
    // Leaving by instance id with the wrong member id is fenced too; with the right one it works.
    let leave = |member: &str| {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s("st")))
            .with_members(vec![leave_group_request::MemberIdentity::default()
                .with_member_id(s(member))
                .with_group_instance_id(Some(s("inst-1")))])
    };
    let r = c.send(&leave(&old), 5).await;
    assert_eq!(r.members[0].error_code, 82);
    let r = c.send(&leave(&new), 5).await;
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    assert_eq!(describe(&mut c, "st").await.group_state.as_str(), "Empty");
}

#[tokio::test]
async fn offsets_with_a_retention_time_expire() {
    let b = start().await;
    let mut c = b.client().await;
    // OffsetCommit v2-v4 carry a retention time; the group has no members.
    let mut req = commit_req("ret", -1, "", 42);
    req.retention_time_ms = 300;
    let r = c.send(&req, 2).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "ret").await, 42);
    let t0 = Instant::now();
    while fetch_offset(&mut c, "ret").await != -1 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the offset never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without a retention time it stays (offsets.retention.minutes is 7 days).
    let r = c.send(&commit_req("keep", -1, "", 7), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fetch_offset(&mut c, "keep").await, 7);
}

#[tokio::test]
async fn groups_and_offsets_survive_a_restart() {
    let mut b = start().await;
    let mut c = b.client().await;
    let j = join_new(&mut c, "durable", 30_000).await;
    let m = j.member_id.to_string();
    assert_eq!(sync(&mut c, "durable", 1, &m, true).await.error_code, 0);
    let r = c.send(&commit_req("durable", 1, &m, 99), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r = c.send(&commit_req("solo", -1, "", 5), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    // Deleted groups stay deleted.
    let r = c.send(&commit_req("gone", -1, "", 1), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gone"))]);
    assert_eq!(c.send(&del, 2).await.results[0].error_code, 0);
    drop(c);
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(fetch_offset(&mut c, "durable").await, 99);
    assert_eq!(fetch_offset(&mut c, "solo").await, 5);
    assert_eq!(fetch_offset(&mut c, "gone").await, -1);
    // Deleting a topic drops the offsets committed on it; a group left empty without offsets
    // ("solo") is removed then, as Kafka removes it.
    let del = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("t"))]);
    assert_eq!(c.send(&del, 5).await.responses[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "solo").await, -1);
    // The member's session goes on: same generation, same assignment.
    assert_eq!(heartbeat(&mut c, "durable", 1, &m).await, 0);
    let d = describe(&mut c, "durable").await;
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Stable", 1));
    assert_eq!(
        &d.members[0].member_assignment[..],
        format!("for {m}").as_bytes()
    );
    let listed = c.send(&ListGroupsRequest::default(), 4).await;
    let mut names: Vec<&str> = listed
        .groups
        .iter()
        .map(|g| g.group_id.0.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["durable"]);
}
