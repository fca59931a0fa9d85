//! The Fetch response on the wire without copying the records: the response is encoded around
//! them, and the records stay in the segment files as [`Part::File`] ranges that the connection
//! sends with `sendfile` (or reads, on TLS). Everything but the records is encoded here field by
//! field as FetchResponse.json lays it out (v4-v16); the tagged sub-structures and aborted
//! transactions use kafka-protocol's own encoders. A response this does not cover (top-level
//! tagged fields: node endpoints, unknown ones) is read into memory and encoded whole instead.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};
use kafka_protocol::protocol::Encodable;
use runnel_storage::log::ReadPlan;

use crate::handlers::Part;

/// A response being written as parts: encoded bytes, then a file range, then bytes...
struct Parts {
    done: Vec<Part>,
    cur: BytesMut,
}

impl Parts {
    fn file_ranges(&mut self, plan: &ReadPlan) {
        if !self.cur.is_empty() {
            self.done.push(Part::Bytes(self.cur.split().freeze()));
        }
        for (file, pos, len) in plan.ranges() {
            self.done.push(Part::File {
                file: file.clone(),
                pos,
                len,
            });
        }
    }

    /// The parts, behind the frame's 4-byte size prefix.
    fn finish(mut self) -> Vec<Part> {
        if !self.cur.is_empty() {
            self.done.push(Part::Bytes(self.cur.split().freeze()));
        }
        let size: usize = self.done.iter().map(Part::len).sum();
        let mut head = BytesMut::with_capacity(4 + self.done.first().map_or(0, Part::len));
        head.put_i32(size as i32);
        match self.done.first() {
            Some(Part::Bytes(b)) => {
                head.put_slice(b);
                self.done[0] = Part::Bytes(head.freeze());
            }
            _ => self.done.insert(0, Part::Bytes(head.freeze())),
        }
        self.done
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// An array's (or a nullable array's, bytes', string's) length: compact or classic.
fn put_len(buf: &mut BytesMut, flexible: bool, len: Option<usize>) {
    match (flexible, len) {
        (true, Some(n)) => put_uvarint(buf, n as u32 + 1),
        (true, None) => put_uvarint(buf, 0),
        (false, Some(n)) => buf.put_i32(n as i32),
        (false, None) => buf.put_i32(-1),
    }
}

/// A tagged field: tag, size, the sub-structure.
fn put_tagged<T: Encodable>(
    buf: &mut BytesMut,
    tag: u32,
    value: &T,
    version: i16,
) -> anyhow::Result<()> {
    put_uvarint(buf, tag);
    put_uvarint(buf, value.compute_size(version)? as u32);
    value.encode(buf, version)
}

/// Encodes the whole Fetch response frame (size prefix, header, body) at `version`, the records
/// of the i-th partition in response order coming from `plans[i]` when it is Some (the
/// partition's `records` field is then ignored), from the response itself otherwise.
pub fn encode(
    version: i16,
    correlation_id: i32,
    mut resp: FetchResponse,
    mut plans: Vec<Option<ReadPlan>>,
) -> anyhow::Result<Vec<Part>> {
    let flexible = version >= 12;
    if !resp.node_endpoints.is_empty()
        || !resp.unknown_tagged_fields.is_empty()
        || resp
            .responses
            .iter()
            .any(|t| !t.unknown_tagged_fields.is_empty())
    {
        // Not covered here: read the records and encode it whole.
        let mut i = 0;
        for t in resp.responses.iter_mut() {
            for p in t.partitions.iter_mut() {
                if let Some(plan) = plans.get_mut(i).and_then(Option::take) {
                    p.records = Some(plan.execute()?.records);
                }
                i += 1;
            }
        }
        let frame = runnel_protocol::frame::encode_response_kind(
            ApiKey::Fetch,
            version,
            correlation_id,
            &ResponseKind::Fetch(resp),
        )?;
        return Ok(vec![Part::Bytes(frame)]);
    }
    let mut out = Parts {
        done: Vec::new(),
        cur: BytesMut::with_capacity(256),
    };
    let buf = &mut out.cur;
    buf.put_i32(correlation_id);
    if flexible {
        buf.put_u8(0);
    }
    buf.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(resp.error_code);
        buf.put_i32(resp.session_id);
    }
    put_len(buf, flexible, Some(resp.responses.len()));
    let mut i = 0;
    for t in &resp.responses {
        let buf = &mut out.cur;
        if version >= 13 {
            buf.put_slice(t.topic_id.as_bytes());
        } else {
            let name = t.topic.0.as_bytes();
            if flexible {
                put_uvarint(buf, name.len() as u32 + 1);
            } else {
                buf.put_i16(name.len() as i16);
            }
            buf.put_slice(name);
        }
        put_len(buf, flexible, Some(t.partitions.len()));
        for p in &t.partitions {
            let plan = plans.get_mut(i).and_then(Option::take);
            i += 1;
            partition(&mut out, version, p, plan)?;
        }
        if flexible {
            out.cur.put_u8(0);
        }
    }
    if flexible {
        out.cur.put_u8(0);
    }
    Ok(out.finish())
}

/// One partition's data, its records from `plan` if given.
fn partition(
    out: &mut Parts,
    version: i16,
    p: &PartitionData,
    plan: Option<ReadPlan>,
) -> anyhow::Result<()> {
    let flexible = version >= 12;
    let buf = &mut out.cur;
    buf.put_i32(p.partition_index);
    buf.put_i16(p.error_code);
    buf.put_i64(p.high_watermark);
    buf.put_i64(p.last_stable_offset);
    if version >= 5 {
        buf.put_i64(p.log_start_offset);
    }
    put_len(buf, flexible, p.aborted_transactions.as_ref().map(Vec::len));
    for a in p.aborted_transactions.iter().flatten() {
        a.encode(buf, version)?;
    }
    if version >= 11 {
        buf.put_i32(p.preferred_read_replica.0);
    }
    match plan {
        Some(plan) => {
            put_len(buf, flexible, Some(plan.len()));
            out.file_ranges(&plan);
        }
        None => {
            put_len(buf, flexible, p.records.as_ref().map(Bytes::len));
            if let Some(r) = &p.records {
                buf.put_slice(r);
            }
        }
    }
    if flexible {
        let buf = &mut out.cur;
        let tags = [
            p.diverging_epoch != Default::default(),
            p.current_leader != Default::default(),
            p.snapshot_id != Default::default(),
        ];
        put_uvarint(
            buf,
            (tags.iter().filter(|t| **t).count() + p.unknown_tagged_fields.len()) as u32,
        );
        if tags[0] {
            put_tagged(buf, 0, &p.diverging_epoch, version)?;
        }
        if tags[1] {
            put_tagged(buf, 1, &p.current_leader, version)?;
        }
        if tags[2] {
            put_tagged(buf, 2, &p.snapshot_id, version)?;
        }
        for (tag, data) in &p.unknown_tagged_fields {
            put_uvarint(buf, *tag as u32);
            put_uvarint(buf, data.len() as u32);
            buf.put_slice(data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use runnel_storage::log::{Log, LogConfig};
    use std::os::unix::fs::FileExt;

    /// The frame the parts make, file ranges read.
    fn materialize(parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File { file, pos, len } => {
                    let mut buf = vec![0u8; *len];
                    file.read_exact_at(&mut buf, *pos).unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    fn log_with_batches(dir: &std::path::Path) -> Log {
        let cfg = LogConfig {
            segment_bytes: 700,
            index_interval_bytes: 100,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir, cfg, 0, true).unwrap();
        for i in 0..20 {
            let v = vec![b'a' + (i % 26) as u8; 40 + i as usize];
            let mut b = runnel_storage::testing::build_batch(
                0,
                &[(Some(b"k"), Some(&v[..]), 1000 + i)],
                -1,
                -1,
                -1,
            );
            log.append_as_leader(&mut b, 0, 5000, false).unwrap();
        }
        log
    }

    fn response(version: i16, endpoints: bool) -> FetchResponse {
        let flexible = version >= 12;
        let topic = |name: &str, id: u128, partitions| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(name.to_string().into()))
                .with_topic_id(uuid::Uuid::from_u128(id))
                .with_partitions(partitions)
        };
        let part = |index: i32| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(100 + index as i64)
                .with_last_stable_offset(90)
                .with_log_start_offset(if version >= 5 { 3 } else { -1 })
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()))
        };
        let mut aborted = part(1).with_aborted_transactions(Some(vec![
            AbortedTransaction::default()
                .with_producer_id(ProducerId(7))
                .with_first_offset(11),
            AbortedTransaction::default()
                .with_producer_id(ProducerId(8))
                .with_first_offset(12),
        ]));
        let mut errored = part(2).with_error_code(6).with_records(None);
        if flexible {
            aborted = aborted
                .with_diverging_epoch(EpochEndOffset::default().with_epoch(4).with_end_offset(55));
            errored = errored.with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(3))
                    .with_leader_epoch(9),
            );
        }
        if version >= 11 {
            errored = errored.with_preferred_read_replica(BrokerId(2));
        }
        let inline = part(3).with_records(Some(Bytes::from_static(b"inline records")));
        let mut resp = FetchResponse::default()
            .with_throttle_time_ms(12)
            .with_session_id(0)
            .with_responses(vec![
                topic("alpha", 1, vec![part(0), aborted]),
                topic("beta-with-a-longer-name", 2, vec![errored, inline, part(4)]),
                topic("empty", 3, vec![]),
            ]);
        if endpoints {
            resp = resp.with_node_endpoints(vec![NodeEndpoint::default()
                .with_node_id(BrokerId(1))
                .with_host("h".to_string().into())
                .with_port(9092)]);
        }
        resp
    }

    #[test]
    fn parts_make_the_frame_kafka_protocol_would_encode() {
        let d = tempfile::tempdir().unwrap();
        let log = log_with_batches(d.path());
        let leo = log.log_end_offset();
        for version in 4..=16 {
            for endpoints in [false, true] {
                if endpoints && version < 16 {
                    continue;
                }
                // Partitions 0, 1 and 4 (response places 0, 1, 5) read from the log.
                let plans = || {
                    let mut p: Vec<Option<ReadPlan>> = (0..6).map(|_| None).collect();
                    p[0] = Some(log.plan_read(0, 1000, leo).unwrap());
                    p[1] = Some(log.plan_read(5, 1, leo).unwrap());
                    p[5] = Some(log.plan_read(2, usize::MAX, leo).unwrap());
                    p
                };
                let mut expected = response(version, endpoints);
                let mut want = plans();
                for (i, p) in expected
                    .responses
                    .iter_mut()
                    .flat_map(|t| t.partitions.iter_mut())
                    .enumerate()
                {
                    if let Some(plan) = want[i].take() {
                        p.records = Some(plan.execute().unwrap().records);
                    }
                }
                let expected = runnel_protocol::frame::encode_response_kind(
                    ApiKey::Fetch,
                    version,
                    42,
                    &ResponseKind::Fetch(expected),
                )
                .unwrap();
                let parts = encode(version, 42, response(version, endpoints), plans()).unwrap();
                assert_eq!(
                    materialize(&parts),
                    &expected[..],
                    "version {version}, node endpoints {endpoints}"
                );
                if !endpoints {
                    assert!(
                        parts
                            .iter()
                            .filter(|p| matches!(p, Part::File { .. }))
                            .count()
                            >= 3,
                        "the records stay in the files"
                    );
                }
            }
        }
    }
}
