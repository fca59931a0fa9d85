//! Tests of the request-body checks: every served version of bodies kafka-protocol encodes is accepted and its prefixes refused, mutated and hostile bodies never panic nor reach the decoder unchecked.

use super::*;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::samples::*;

fn decode_ok(key: i16, v: i16, body: &[u8]) -> bool {
    fn d<T: Decodable>(body: &[u8], v: i16) -> bool {
        T::decode(&mut Bytes::copy_from_slice(body), v).is_ok()
    }
    match key {
        0 => d::<ProduceRequest>(body, v),
        1 => d::<FetchRequest>(body, v),
        2 => d::<ListOffsetsRequest>(body, v),
        3 => d::<MetadataRequest>(body, v),
        18 => d::<ApiVersionsRequest>(body, v),
        19 => d::<CreateTopicsRequest>(body, v),
        20 => d::<DeleteTopicsRequest>(body, v),
        21 => d::<DeleteRecordsRequest>(body, v),
        22 => d::<InitProducerIdRequest>(body, v),
        23 => d::<OffsetForLeaderEpochRequest>(body, v),
        32 => d::<DescribeConfigsRequest>(body, v),
        33 => d::<AlterConfigsRequest>(body, v),
        37 => d::<CreatePartitionsRequest>(body, v),
        44 => d::<IncrementalAlterConfigsRequest>(body, v),
        60 => d::<DescribeClusterRequest>(body, v),
        8 => d::<OffsetCommitRequest>(body, v),
        9 => d::<OffsetFetchRequest>(body, v),
        10 => d::<FindCoordinatorRequest>(body, v),
        11 => d::<JoinGroupRequest>(body, v),
        12 => d::<HeartbeatRequest>(body, v),
        13 => d::<LeaveGroupRequest>(body, v),
        14 => d::<SyncGroupRequest>(body, v),
        15 => d::<DescribeGroupsRequest>(body, v),
        16 => d::<ListGroupsRequest>(body, v),
        17 => d::<SaslHandshakeRequest>(body, v),
        24 => d::<AddPartitionsToTxnRequest>(body, v),
        25 => d::<AddOffsetsToTxnRequest>(body, v),
        26 => d::<EndTxnRequest>(body, v),
        27 => d::<WriteTxnMarkersRequest>(body, v),
        28 => d::<TxnOffsetCommitRequest>(body, v),
        36 => d::<SaslAuthenticateRequest>(body, v),
        42 => d::<DeleteGroupsRequest>(body, v),
        47 => d::<OffsetDeleteRequest>(body, v),
        68 => d::<ConsumerGroupHeartbeatRequest>(body, v),
        69 => d::<ConsumerGroupDescribeRequest>(body, v),
        29 => d::<DescribeAclsRequest>(body, v),
        30 => d::<CreateAclsRequest>(body, v),
        31 => d::<DeleteAclsRequest>(body, v),
        34 => d::<AlterReplicaLogDirsRequest>(body, v),
        35 => d::<DescribeLogDirsRequest>(body, v),
        43 => d::<ElectLeadersRequest>(body, v),
        45 => d::<AlterPartitionReassignmentsRequest>(body, v),
        46 => d::<ListPartitionReassignmentsRequest>(body, v),
        64 => d::<UnregisterBrokerRequest>(body, v),
        48 => d::<DescribeClientQuotasRequest>(body, v),
        49 => d::<AlterClientQuotasRequest>(body, v),
        50 => d::<DescribeUserScramCredentialsRequest>(body, v),
        51 => d::<AlterUserScramCredentialsRequest>(body, v),
        55 => d::<DescribeQuorumRequest>(body, v),
        57 => d::<UpdateFeaturesRequest>(body, v),
        75 => d::<DescribeTopicPartitionsRequest>(body, v),
        80 => d::<AddRaftVoterRequest>(body, v),
        81 => d::<RemoveRaftVoterRequest>(body, v),
        61 => d::<DescribeProducersRequest>(body, v),
        65 => d::<DescribeTransactionsRequest>(body, v),
        66 => d::<ListTransactionsRequest>(body, v),
        _ => unreachable!(),
    }
}

/// Accepts the encoded body (and with trailing bytes), rejects every strict prefix.
fn assert_valid_and_prefixes_rejected(key: i16, v: i16, body: &[u8]) {
    assert_eq!(check_request_body(key, v, body), Ok(()), "api {key} v{v}");
    // The schema walk must end exactly where kafka-protocol's encoding ends: a missing or
    // extra field in the table would shift this.
    assert_eq!(
        walk_body(key, v, body),
        Ok(body.len()),
        "api {key} v{v}: table layout disagrees with the encoded size"
    );
    assert!(
        decode_ok(key, v, body),
        "kafka-protocol decodes api {key} v{v}"
    );
    let mut trailing = body.to_vec();
    trailing.extend_from_slice(&[0, 1, 2]);
    assert_eq!(
        check_request_body(key, v, &trailing),
        Ok(()),
        "api {key} v{v} trailing"
    );
    for cut in 0..body.len() {
        assert!(
            check_request_body(key, v, &body[..cut]).is_err(),
            "api {key} v{v}: prefix of {cut}/{} bytes accepted",
            body.len()
        );
    }
}

#[test]
fn every_served_version_accepts_encoded_requests_and_rejects_prefixes() {
    for (key, min, max) in served() {
        for v in min..=max {
            assert!(has_schema(key, v), "api {key} v{v} missing from the table");
            assert_valid_and_prefixes_rejected(key, v, &build(key, v));
        }
    }
}

#[test]
fn every_version_kafka_protocol_decodes_is_in_the_table() {
    let all = all_apis();
    assert_eq!(all.len(), 55);
    for (key, min, max) in all {
        for v in min..=max {
            assert!(has_schema(key, v), "api {key} v{v} missing from the table");
            assert_valid_and_prefixes_rejected(key, v, &build(key, v));
        }
    }
}

#[test]
fn admin_apis_reject_huge_lengths() {
    // DescribeAcls v1: int8, then a classic string length claiming 32767 bytes.
    let body = [2, 0x7f, 0xff, b'x', 3];
    assert_eq!(
        check_request_body(29, 1, &body),
        Err(LengthError::BadLength)
    );
    // CreateAcls v1: creations count 0x7fffffff.
    let mut body = 0x7fff_ffffi32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 24]);
    assert_eq!(
        check_request_body(30, 1, &body),
        Err(LengthError::BadLength)
    );
    // ListTransactions v0: compact array length u32::MAX (varint ff ff ff ff 0f).
    let body = [0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0];
    assert_eq!(
        check_request_body(66, 0, &body),
        Err(LengthError::BadLength)
    );
    // DescribeTopicPartitions v0: no topics, a limit, and a cursor whose topic name claims
    // more bytes than remain.
    let body = [0x01, 0, 0, 0x07, 0xd0, 0x01, 0x7f, b't', 0, 0, 0, 0, 0, 0];
    assert_eq!(
        check_request_body(75, 0, &body),
        Err(LengthError::BadLength)
    );
    // The same with a null cursor is whole.
    assert_eq!(
        check_request_body(75, 0, &[0x01, 0, 0, 0x07, 0xd0, 0xff, 0]),
        Ok(())
    );
    // DescribeLogDirs v2: a six-byte varint for the topics length.
    let body = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0];
    assert_eq!(
        check_request_body(35, 2, &body),
        Err(LengthError::BadVarint)
    );
}

fn header(key: i16, ver: i16, corr: i32, client: Option<&str>, hv: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&ver.to_be_bytes());
    h.extend_from_slice(&corr.to_be_bytes());
    if hv >= 1 {
        match client {
            Some(c) => {
                h.extend_from_slice(&(c.len() as i16).to_be_bytes());
                h.extend_from_slice(c.as_bytes());
            }
            None => h.extend_from_slice(&(-1i16).to_be_bytes()),
        }
    }
    if hv >= 2 {
        h.push(0);
    }
    h
}

#[test]
fn request_headers_are_measured_and_checked() {
    use kafka_protocol::messages::RequestHeader;
    // Headers encoded by kafka-protocol, followed by a body.
    for (key, ver, hv) in [
        (3i16, 1i16, 1i16),
        (3, 12, 2),
        (18, 3, 2),
        (0, 9, 2),
        (0, 3, 1),
    ] {
        for client in [Some("rdkafka"), None] {
            let mut h = RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(ver)
                .with_correlation_id(77)
                .with_client_id(client.map(s));
            if hv >= 2 {
                h.unknown_tagged_fields
                    .insert(5, Bytes::from_static(b"tag-data"));
            }
            let head = enc(&h, hv);
            let mut frame = head.clone();
            frame.extend_from_slice(&build(key, ver));
            assert_eq!(
                check_request_header(key, ver, hv, &frame),
                Ok(head.len()),
                "api {key} v{ver} header v{hv}"
            );
            for cut in 0..head.len() {
                assert!(
                    check_request_header(key, ver, hv, &frame[..cut]).is_err(),
                    "header prefix {cut} accepted"
                );
            }
            let len = head.len();
            assert_eq!(check_request_body(key, ver, &frame[len..]), Ok(()));
        }
    }
    // Header v0: fixed 8 bytes.
    assert_eq!(
        check_request_header(7, 0, 0, &header(7, 0, 1, None, 0)),
        Ok(8)
    );
    // Mismatched api key or version.
    let h = header(3, 1, 1, Some("c"), 1);
    assert_eq!(
        check_request_header(3, 2, 1, &h),
        Err(LengthError::HeaderMismatch)
    );
    assert_eq!(
        check_request_header(0, 1, 1, &h),
        Err(LengthError::HeaderMismatch)
    );
    assert_eq!(
        check_request_header(3, 1, 3, &h),
        Err(LengthError::UnknownSchema)
    );
    // Client id length past the end, and below -1.
    let mut h = header(3, 1, 1, Some("abc"), 1);
    h[8..10].copy_from_slice(&0x7fffi16.to_be_bytes());
    assert_eq!(
        check_request_header(3, 1, 1, &h),
        Err(LengthError::BadLength)
    );
    h[8..10].copy_from_slice(&(-2i16).to_be_bytes());
    assert_eq!(
        check_request_header(3, 1, 1, &h),
        Err(LengthError::BadLength)
    );
    // Header v2: tagged section with a huge size, and a six-byte varint count.
    let mut h = header(3, 12, 1, Some("c"), 1);
    h.extend_from_slice(&[0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(
        check_request_header(3, 12, 2, &h),
        Err(LengthError::BadLength)
    );
    let mut h = header(3, 12, 1, Some("c"), 1);
    h.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(
        check_request_header(3, 12, 2, &h),
        Err(LengthError::BadVarint)
    );
}

#[test]
fn random_headers_never_panic() {
    let mut rng = XorShift(0x0dd_ba11_cafe_f00d);
    let mut buf = [0u8; 32];
    for hv in 0..=3 {
        for _ in 0..10_000 {
            let len = (rng.next() % 32) as usize;
            for b in &mut buf[..len] {
                *b = rng.next() as u8;
            }
            let key = if len >= 2 {
                i16::from_be_bytes([buf[0], buf[1]])
            } else {
                0
            };
            let ver = if len >= 4 {
                i16::from_be_bytes([buf[2], buf[3]])
            } else {
                0
            };
            if let Ok(n) = check_request_header(key, ver, hv, &buf[..len]) {
                assert!(n <= len);
            }
        }
    }
}

#[test]
fn named_versions_from_the_brief() {
    for (key, v) in [
        (0, 3),
        (0, 9),
        (1, 4),
        (1, 12),
        (1, 16),
        (3, 0),
        (3, 9),
        (3, 12),
        (18, 0),
        (18, 3),
        (19, 2),
        (19, 5),
        (19, 7),
        (2, 1),
        (2, 7),
        (32, 4),
        (22, 0),
        (22, 4),
        (20, 6),
        (44, 1),
    ] {
        let body = build(key, v);
        assert!(body.len() > 4 || key == 18, "api {key} v{v} is non-trivial");
        assert_valid_and_prefixes_rejected(key, v, &body);
    }
}

#[test]
fn unknown_schema() {
    assert_eq!(
        check_request_body(9999, 0, &[]),
        Err(LengthError::UnknownSchema)
    );
    assert_eq!(
        check_request_body(0, 99, &[]),
        Err(LengthError::UnknownSchema)
    );
    assert_eq!(
        check_request_body(3, -1, &[]),
        Err(LengthError::UnknownSchema)
    );
}

#[test]
fn huge_classic_array_count_is_rejected() {
    // Metadata v0: the topics array count is the first field.
    let mut body = build(3, 0);
    body[..4].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(check_request_body(3, 0, &body), Err(LengthError::BadLength));

    // Produce v3: null transactional id (2), acks (2), timeout (4), then the topics count.
    let mut body = enc(&produce(3).with_transactional_id(None), 3);
    body[8..12].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(check_request_body(0, 3, &body), Err(LengthError::BadLength));

    // Fetch v4 with a 20-byte body claiming 2^31-1 topics.
    let mut body = vec![
        0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0,
    ];
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(check_request_body(1, 4, &body), Err(LengthError::BadLength));

    // A negative count other than -1.
    let mut body = build(3, 1);
    body[..4].copy_from_slice(&(-2i32).to_be_bytes());
    assert_eq!(check_request_body(3, 1, &body), Err(LengthError::BadLength));
    // -1 is null (all topics) and is fine.
    assert_eq!(check_request_body(3, 1, &(-1i32).to_be_bytes()), Ok(()));
}

#[test]
fn huge_compact_array_length_is_rejected() {
    // Produce v9: null compact transactional id (1), acks (2), timeout (4), topics uvarint.
    let mut body = vec![0x00, 0xff, 0xff, 0, 0, 0x05, 0xdc];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    body.extend_from_slice(&[0; 32]);
    assert_eq!(check_request_body(0, 9, &body), Err(LengthError::BadLength));

    // Metadata v12: compact topics array, then a topic whose name claims u32::MAX - 1 bytes.
    let mut body = vec![0x02];
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(
        check_request_body(3, 12, &body),
        Err(LengthError::BadLength)
    );

    // A classic string length below -1.
    let mut body = build(0, 3);
    body[..2].copy_from_slice(&(-5i16).to_be_bytes());
    assert_eq!(check_request_body(0, 3, &body), Err(LengthError::BadLength));
}

#[test]
fn six_byte_varint_is_rejected() {
    // Metadata v9: the topics length is the first field.
    let body = [0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, 0];
    assert_eq!(check_request_body(3, 9, &body), Err(LengthError::BadVarint));
    // Tagged-field count of ApiVersions v3 after two empty compact strings.
    let body = [0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(LengthError::BadVarint)
    );
    // A five-byte varint is fine.
    let body = [0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x00];
    assert_eq!(check_request_body(18, 3, &body), Ok(()));
}

#[test]
fn tagged_fields_are_skipped_and_bounded() {
    // ApiVersions v3 with two unknown tagged fields.
    let body = [0x02, b'a', 0x01, 0x02, 0x05, 0x03, 1, 2, 3, 0x09, 0x00];
    assert_eq!(check_request_body(18, 3, &body), Ok(()));
    // Tagged field size larger than the rest of the body.
    let body = [0x01, 0x01, 0x01, 0x05, 0x7f, 1, 2];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(LengthError::BadLength)
    );
    // Tagged field count larger than the rest of the body.
    let body = [0x01, 0x01, 0xff, 0xff, 0x03];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(LengthError::BadLength)
    );
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 64];
    for a in APIS {
        for v in a.min..=a.max {
            for _ in 0..10_000 {
                let len = (rng.next() % 64) as usize;
                for b in &mut buf[..len] {
                    // Bias toward small values and 0xff so lengths are sometimes plausible.
                    let r = rng.next();
                    *b = match r % 4 {
                        0 => 0,
                        1 => 0xff,
                        2 => (r >> 8) as u8 & 0x07,
                        _ => (r >> 8) as u8,
                    };
                }
                let _ = check_request_body(a.key, v, &buf[..len]);
            }
        }
    }
}

/// Mutated valid bodies: whatever the check accepts, kafka-protocol decodes without a huge
/// allocation (a wrong table entry would abort this test).
#[test]
fn mutated_bodies_accepted_by_the_check_are_safe_to_decode() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for (key, min, max) in all_apis() {
        for v in min..=max {
            let body = build(key, v);
            if body.is_empty() {
                continue;
            }
            for _ in 0..300 {
                let mut m = body.clone();
                for _ in 0..1 + rng.next() % 3 {
                    let i = (rng.next() as usize) % m.len();
                    m[i] = match rng.next() % 3 {
                        0 => 0xff,
                        1 => 0x7f,
                        _ => rng.next() as u8,
                    };
                }
                if check_request_body(key, v, &m).is_ok() {
                    let _ = decode_ok(key, v, &m);
                }
            }
        }
    }
}

#[test]
fn every_group_and_txn_version_accepts_encoded_requests_and_rejects_prefixes() {
    for (key, min, max) in group_apis() {
        for v in min..=max {
            assert!(has_schema(key, v), "api {key} v{v} missing from the table");
            assert_valid_and_prefixes_rejected(key, v, &build(key, v));
        }
    }
}
