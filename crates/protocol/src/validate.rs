//! Allocation-free length check of request bodies, run before `kafka-protocol` decodes them.
//!
//! `kafka-protocol` sizes vectors straight from wire-supplied counts (`Vec::with_capacity(n)`), so
//! a tiny frame claiming 2^31 array elements would make the broker try to allocate hundreds of GiB
//! and abort. This module owns a compact transcription of Kafka's request schemas (from the
//! `clients/src/main/resources/common/message/*Request.json` definitions) and walks a body against
//! it without allocating, rejecting any array count, string length or bytes length that is below
//! -1 or larger than the bytes that remain, malformed varints, and truncated bodies. Tagged fields
//! are not positional: each tagged section is skipped generically (count, then tag/size/bytes).
//! Trailing bytes after the message are accepted; the decoder decides what to do with them.
//!
//! The table covers 53 request APIs (produce/fetch, metadata, admin, ACL, group, transaction,
//! SASL, quota, feature, quorum and describe APIs) at every version `kafka-protocol` 0.18 decodes (each message's
//! `VERSIONS`), plus older Kafka versions where the layout is known; anything else is
//! [`LengthError::UnknownSchema`]. Contents of tagged fields are not inspected: no request tagged
//! field in the table holds an array. [`check_request_header`] does the same for the request
//! header and reports where the body starts.

use thiserror::Error;

/// Why a request body failed the length check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LengthError {
    /// The body ended in the middle of a fixed-width field or a varint.
    #[error("request body is truncated")]
    Truncated,
    /// An array count, string length or bytes length is below -1 or exceeds the remaining bytes.
    #[error("array, string or bytes length does not fit the request body")]
    BadLength,
    /// An unsigned varint runs longer than its maximum encoded width.
    #[error("malformed varint in request body")]
    BadVarint,
    /// No schema is known for this API key and version (or header version).
    #[error("no schema for this API key and version")]
    UnknownSchema,
    /// The request header names a different API key or version than the caller expected.
    #[error("request header does not match the expected API key and version")]
    HeaderMismatch,
}

/// Checks that every length in `body` (the bytes after the request header) fits the body.
///
/// Walks the schema of `api_key` at `api_version` without allocating; returns
/// [`LengthError::UnknownSchema`] for pairs missing from the table.
pub fn check_request_body(api_key: i16, api_version: i16, body: &[u8]) -> Result<(), LengthError> {
    walk_body(api_key, api_version, body).map(|_| ())
}

/// Walks a body and returns how many bytes the message occupies (trailing bytes excluded).
fn walk_body(api_key: i16, api_version: i16, body: &[u8]) -> Result<usize, LengthError> {
    let schema = schema(api_key, api_version).ok_or(LengthError::UnknownSchema)?;
    let mut r = Reader { buf: body, pos: 0 };
    let flexible = api_version >= schema.flexible;
    walk_struct(&mut r, schema.fields, api_version, flexible)?;
    Ok(r.pos)
}

/// Checks a request header and returns its length in bytes, so the body starts there.
///
/// `frame` is the request without its 4-byte size prefix. Header version 0 is api key, api
/// version and correlation id; version 1 adds the nullable int16-length client id; version 2
/// adds a tagged-field section after the (still non-compact) client id. The api key and version
/// in the frame must equal `api_key` and `api_version`.
pub fn check_request_header(
    api_key: i16,
    api_version: i16,
    header_version: i16,
    frame: &[u8],
) -> Result<usize, LengthError> {
    if !(0..=2).contains(&header_version) {
        return Err(LengthError::UnknownSchema);
    }
    let mut r = Reader { buf: frame, pos: 0 };
    let key = r.i16()?;
    let version = r.i16()?;
    r.skip(4)?; // correlation id
    if key != api_key || version != api_version {
        return Err(LengthError::HeaderMismatch);
    }
    if header_version >= 1 {
        // client_id: a classic nullable string even in header v2.
        if let Some(n) = r.str_len(false)? {
            r.skip(n)?;
        }
    }
    if header_version >= 2 {
        r.skip_tagged()?;
    }
    Ok(r.pos)
}

/// Whether the table has a schema for this API key and version.
pub fn has_schema(api_key: i16, api_version: i16) -> bool {
    schema(api_key, api_version).is_some()
}

// ---------------------------------------------------------------------------------------------
// Walker
// ---------------------------------------------------------------------------------------------

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn skip(&mut self, n: usize) -> Result<(), LengthError> {
        if n > self.remaining() {
            return Err(LengthError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, LengthError> {
        let b = *self.buf.get(self.pos).ok_or(LengthError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn i16(&mut self) -> Result<i16, LengthError> {
        Ok(i16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    fn i32(&mut self) -> Result<i32, LengthError> {
        let mut b = [0u8; 4];
        for x in &mut b {
            *x = self.byte()?;
        }
        Ok(i32::from_be_bytes(b))
    }

    /// Unsigned 32-bit varint: at most 5 bytes.
    fn uvarint(&mut self) -> Result<u64, LengthError> {
        let mut value = 0u64;
        for i in 0..5 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(LengthError::BadVarint)
    }

    /// A length that must fit the remaining bytes; `None` means null.
    fn fit(&self, len: i64) -> Result<Option<usize>, LengthError> {
        if len == -1 {
            return Ok(None);
        }
        if len < -1 || len as u64 > self.remaining() as u64 {
            return Err(LengthError::BadLength);
        }
        Ok(Some(len as usize))
    }

    /// String length: int16, or compact (uvarint length + 1) in flexible versions.
    fn str_len(&mut self, flexible: bool) -> Result<Option<usize>, LengthError> {
        let len = if flexible {
            self.uvarint()? as i64 - 1
        } else {
            i64::from(self.i16()?)
        };
        self.fit(len)
    }

    /// Bytes or array length: int32, or compact (uvarint length + 1) in flexible versions.
    fn len32(&mut self, flexible: bool) -> Result<Option<usize>, LengthError> {
        let len = if flexible {
            self.uvarint()? as i64 - 1
        } else {
            i64::from(self.i32()?)
        };
        self.fit(len)
    }

    /// Skips a tagged-field section: count, then (tag, size, size bytes) per field.
    fn skip_tagged(&mut self) -> Result<(), LengthError> {
        let count = self.uvarint()?;
        if count > self.remaining() as u64 {
            return Err(LengthError::BadLength);
        }
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()?;
            if size > self.remaining() as u64 {
                return Err(LengthError::BadLength);
            }
            self.pos += size as usize;
        }
        Ok(())
    }
}

fn walk_struct(
    r: &mut Reader<'_>,
    fields: &[Field],
    version: i16,
    flexible: bool,
) -> Result<(), LengthError> {
    for f in fields {
        if version >= f.min && version <= f.max {
            walk_kind(r, f.kind, version, flexible)?;
        }
    }
    if flexible {
        r.skip_tagged()?;
    }
    Ok(())
}

fn walk_kind(
    r: &mut Reader<'_>,
    kind: Kind,
    version: i16,
    flexible: bool,
) -> Result<(), LengthError> {
    match kind {
        Kind::I8 | Kind::Bool => r.skip(1),
        Kind::I16 => r.skip(2),
        Kind::I32 => r.skip(4),
        Kind::I64 => r.skip(8),
        Kind::Uuid => r.skip(16),
        Kind::Str => match r.str_len(flexible)? {
            Some(n) => r.skip(n),
            None => Ok(()),
        },
        Kind::Bytes | Kind::Records => match r.len32(flexible)? {
            Some(n) => r.skip(n),
            None => Ok(()),
        },
        Kind::Arr(fields) => {
            if let Some(n) = r.len32(flexible)? {
                for _ in 0..n {
                    walk_struct(r, fields, version, flexible)?;
                }
            }
            Ok(())
        }
        Kind::ArrOf(elem) => {
            if let Some(n) = r.len32(flexible)? {
                for _ in 0..n {
                    walk_kind(r, *elem, version, flexible)?;
                }
            }
            Ok(())
        }
        Kind::OptStruct(fields) => {
            // An int8 marker: negative for null, else the struct follows.
            if (r.byte()? as i8) >= 0 {
                walk_struct(r, fields, version, flexible)?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schema DSL
// ---------------------------------------------------------------------------------------------

/// The wire type of one field.
#[derive(Clone, Copy)]
enum Kind {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    Bool,
    /// string: int16 length, or compact in flexible versions; nullable is accepted everywhere.
    Str,
    /// bytes: int32 length, or compact in flexible versions.
    Bytes,
    /// records: encoded like bytes.
    Records,
    /// Array of structs; in flexible versions every element ends with a tagged section.
    Arr(&'static [Field]),
    /// Array of a primitive type.
    ArrOf(&'static Kind),
    /// A nullable struct: an int8 marker (-1 null), then the struct (with its tagged section in
    /// flexible versions).
    OptStruct(&'static [Field]),
}

/// A positional field present in versions `min..=max`.
#[derive(Clone, Copy)]
struct Field {
    kind: Kind,
    min: i16,
    max: i16,
}

/// One request message: API key, versions in the table, first flexible version, fields.
struct Api {
    key: i16,
    min: i16,
    max: i16,
    flexible: i16,
    fields: &'static [Field],
}

/// First flexible version of a message that has none.
const NONE: i16 = i16::MAX;

/// A field present from version `min` on.
const fn f(min: i16, kind: Kind) -> Field {
    Field {
        kind,
        min,
        max: i16::MAX,
    }
}

/// A field present in versions `min..=max`.
const fn fr(min: i16, max: i16, kind: Kind) -> Field {
    Field { kind, min, max }
}

const fn api(key: i16, min: i16, max: i16, flexible: i16, fields: &'static [Field]) -> Api {
    Api {
        key,
        min,
        max,
        flexible,
        fields,
    }
}

use Kind::*;

const STRINGS: Kind = ArrOf(&Str);
const INT32S: Kind = ArrOf(&I32);

// Produce (0)
const PRODUCE: &[Field] = &[
    f(3, Str), // TransactionalId
    f(0, I16), // Acks
    f(0, I32), // TimeoutMs
    f(
        0,
        Arr(&[
            fr(0, 12, Str),                         // Name
            f(13, Uuid),                            // TopicId
            f(0, Arr(&[f(0, I32), f(0, Records)])), // PartitionData: Index, Records
        ]),
    ),
];

// Fetch (1)
const FETCH: &[Field] = &[
    fr(0, 14, I32), // ReplicaId
    f(0, I32),      // MaxWaitMs
    f(0, I32),      // MinBytes
    f(3, I32),      // MaxBytes
    f(4, I8),       // IsolationLevel
    f(7, I32),      // SessionId
    f(7, I32),      // SessionEpoch
    f(
        0,
        Arr(&[
            fr(0, 12, Str), // Topic
            f(13, Uuid),    // TopicId
            f(
                0,
                Arr(&[
                    f(0, I32),  // Partition
                    f(9, I32),  // CurrentLeaderEpoch
                    f(0, I64),  // FetchOffset
                    f(12, I32), // LastFetchedEpoch
                    f(5, I64),  // LogStartOffset
                    f(0, I32),  // PartitionMaxBytes
                ]),
            ),
        ]),
    ),
    f(
        7,
        Arr(&[
            fr(7, 12, Str), // Topic
            f(13, Uuid),    // TopicId
            f(7, INT32S),   // Partitions
        ]),
    ),
    f(11, Str), // RackId
];

// ListOffsets (2)
const LIST_OFFSETS: &[Field] = &[
    f(0, I32), // ReplicaId
    f(2, I8),  // IsolationLevel
    f(
        0,
        Arr(&[
            f(0, Str), // Name
            f(
                0,
                Arr(&[
                    f(0, I32),     // PartitionIndex
                    f(4, I32),     // CurrentLeaderEpoch
                    f(0, I64),     // Timestamp
                    fr(0, 0, I32), // MaxNumOffsets
                ]),
            ),
        ]),
    ),
    f(10, I32), // TimeoutMs
];

// Metadata (3)
const METADATA: &[Field] = &[
    f(0, Arr(&[f(10, Uuid), f(0, Str)])), // Topics: TopicId, Name
    f(4, Bool),                           // AllowAutoTopicCreation
    fr(8, 10, Bool),                      // IncludeClusterAuthorizedOperations
    f(8, Bool),                           // IncludeTopicAuthorizedOperations
];

// ApiVersions (18)
const API_VERSIONS: &[Field] = &[
    f(3, Str), // ClientSoftwareName
    f(3, Str), // ClientSoftwareVersion
];

// CreateTopics (19)
const CREATE_TOPICS: &[Field] = &[
    f(
        0,
        Arr(&[
            f(0, Str),                             // Name
            f(0, I32),                             // NumPartitions
            f(0, I16),                             // ReplicationFactor
            f(0, Arr(&[f(0, I32), f(0, INT32S)])), // Assignments: PartitionIndex, BrokerIds
            f(0, Arr(&[f(0, Str), f(0, Str)])),    // Configs: Name, Value
        ]),
    ),
    f(0, I32),  // TimeoutMs
    f(1, Bool), // ValidateOnly
];

// DeleteTopics (20)
const DELETE_TOPICS: &[Field] = &[
    f(6, Arr(&[f(6, Str), f(6, Uuid)])), // Topics: Name, TopicId
    fr(0, 5, STRINGS),                   // TopicNames
    f(0, I32),                           // TimeoutMs
];

// DeleteRecords (21)
const DELETE_RECORDS: &[Field] = &[
    f(
        0,
        Arr(&[
            f(0, Str),                          // Name
            f(0, Arr(&[f(0, I32), f(0, I64)])), // Partitions: PartitionIndex, Offset
        ]),
    ),
    f(0, I32), // TimeoutMs
];

// InitProducerId (22)
const INIT_PRODUCER_ID: &[Field] = &[
    f(0, Str), // TransactionalId
    f(0, I32), // TransactionTimeoutMs
    f(3, I64), // ProducerId
    f(3, I16), // ProducerEpoch
];

// OffsetForLeaderEpoch (23)
const OFFSET_FOR_LEADER_EPOCH: &[Field] = &[
    f(3, I32), // ReplicaId
    f(
        0,
        Arr(&[
            f(0, Str), // Topic
            // Partitions: Partition, CurrentLeaderEpoch, LeaderEpoch
            f(0, Arr(&[f(0, I32), f(2, I32), f(0, I32)])),
        ]),
    ),
];

// DescribeConfigs (32)
const DESCRIBE_CONFIGS: &[Field] = &[
    // Resources: ResourceType, ResourceName, ConfigurationKeys
    f(0, Arr(&[f(0, I8), f(0, Str), f(0, STRINGS)])),
    f(1, Bool), // IncludeSynonyms
    f(3, Bool), // IncludeDocumentation
];

// AlterConfigs (33)
const ALTER_CONFIGS: &[Field] = &[
    f(
        0,
        Arr(&[
            f(0, I8),                           // ResourceType
            f(0, Str),                          // ResourceName
            f(0, Arr(&[f(0, Str), f(0, Str)])), // Configs: Name, Value
        ]),
    ),
    f(0, Bool), // ValidateOnly
];

// CreatePartitions (37)
const CREATE_PARTITIONS: &[Field] = &[
    f(
        0,
        Arr(&[
            f(0, Str),                  // Name
            f(0, I32),                  // Count
            f(0, Arr(&[f(0, INT32S)])), // Assignments: BrokerIds
        ]),
    ),
    f(0, I32),  // TimeoutMs
    f(0, Bool), // ValidateOnly
];

// OffsetCommit (8)
const OFFSET_COMMIT: &[Field] = &[
    f(0, Str),     // GroupId
    f(1, I32),     // GenerationIdOrMemberEpoch
    f(1, Str),     // MemberId
    f(7, Str),     // GroupInstanceId
    fr(2, 4, I64), // RetentionTimeMs
    f(
        0,
        Arr(&[
            f(0, Str), // Name
            f(
                0,
                Arr(&[
                    f(0, I32),     // PartitionIndex
                    f(0, I64),     // CommittedOffset
                    f(6, I32),     // CommittedLeaderEpoch
                    fr(1, 1, I64), // CommitTimestamp
                    f(0, Str),     // CommittedMetadata
                ]),
            ),
        ]),
    ),
];

// OffsetFetch (9)
const OFFSET_FETCH: &[Field] = &[
    fr(0, 7, Str),                                     // GroupId
    fr(0, 7, Arr(&[fr(0, 7, Str), fr(0, 7, INT32S)])), // Topics: Name, PartitionIndexes
    f(
        8,
        Arr(&[
            f(8, Str),                             // GroupId
            f(9, Str),                             // MemberId
            f(9, I32),                             // MemberEpoch
            f(8, Arr(&[f(8, Str), f(8, INT32S)])), // Topics: Name, PartitionIndexes
        ]),
    ),
    f(7, Bool), // RequireStable
];

// FindCoordinator (10)
const FIND_COORDINATOR: &[Field] = &[
    fr(0, 3, Str), // Key
    f(1, I8),      // KeyType
    f(4, STRINGS), // CoordinatorKeys
];

// JoinGroup (11)
const JOIN_GROUP: &[Field] = &[
    f(0, Str),                            // GroupId
    f(0, I32),                            // SessionTimeoutMs
    f(1, I32),                            // RebalanceTimeoutMs
    f(0, Str),                            // MemberId
    f(5, Str),                            // GroupInstanceId
    f(0, Str),                            // ProtocolType
    f(0, Arr(&[f(0, Str), f(0, Bytes)])), // Protocols: Name, Metadata
    f(8, Str),                            // Reason
];

// Heartbeat (12)
const HEARTBEAT: &[Field] = &[
    f(0, Str), // GroupId
    f(0, I32), // GenerationId
    f(0, Str), // MemberId
    f(3, Str), // GroupInstanceId
];

// LeaveGroup (13)
const LEAVE_GROUP: &[Field] = &[
    f(0, Str),     // GroupId
    fr(0, 2, Str), // MemberId
    // Members: MemberId, GroupInstanceId, Reason
    f(3, Arr(&[f(3, Str), f(3, Str), f(5, Str)])),
];

// SyncGroup (14)
const SYNC_GROUP: &[Field] = &[
    f(0, Str),                            // GroupId
    f(0, I32),                            // GenerationId
    f(0, Str),                            // MemberId
    f(3, Str),                            // GroupInstanceId
    f(5, Str),                            // ProtocolType
    f(5, Str),                            // ProtocolName
    f(0, Arr(&[f(0, Str), f(0, Bytes)])), // Assignments: MemberId, Assignment
];

// DescribeGroups (15)
const DESCRIBE_GROUPS: &[Field] = &[
    f(0, STRINGS), // Groups
    f(3, Bool),    // IncludeAuthorizedOperations
];

// ListGroups (16)
const LIST_GROUPS: &[Field] = &[
    f(4, STRINGS), // StatesFilter
    f(5, STRINGS), // TypesFilter
];

// SaslHandshake (17)
const SASL_HANDSHAKE: &[Field] = &[f(0, Str)]; // Mechanism

// AddPartitionsToTxn (24); AddPartitionsToTxnTopic is Name, Partitions.
const ADD_PARTITIONS_TO_TXN_TOPIC: Kind = Arr(&[f(0, Str), f(0, INT32S)]);
const ADD_PARTITIONS_TO_TXN: &[Field] = &[
    f(
        4,
        Arr(&[
            f(4, Str),                         // TransactionalId
            f(4, I64),                         // ProducerId
            f(4, I16),                         // ProducerEpoch
            f(4, Bool),                        // VerifyOnly
            f(4, ADD_PARTITIONS_TO_TXN_TOPIC), // Topics
        ]),
    ),
    fr(0, 3, Str),                         // V3AndBelowTransactionalId
    fr(0, 3, I64),                         // V3AndBelowProducerId
    fr(0, 3, I16),                         // V3AndBelowProducerEpoch
    fr(0, 3, ADD_PARTITIONS_TO_TXN_TOPIC), // V3AndBelowTopics
];

// AddOffsetsToTxn (25)
const ADD_OFFSETS_TO_TXN: &[Field] = &[
    f(0, Str), // TransactionalId
    f(0, I64), // ProducerId
    f(0, I16), // ProducerEpoch
    f(0, Str), // GroupId
];

// EndTxn (26)
const END_TXN: &[Field] = &[
    f(0, Str),  // TransactionalId
    f(0, I64),  // ProducerId
    f(0, I16),  // ProducerEpoch
    f(0, Bool), // Committed
];

// WriteTxnMarkers (27)
const WRITE_TXN_MARKERS: &[Field] = &[f(
    0,
    Arr(&[
        f(0, I64),                             // ProducerId
        f(0, I16),                             // ProducerEpoch
        f(0, Bool),                            // TransactionResult
        f(0, Arr(&[f(0, Str), f(0, INT32S)])), // Topics: Name, PartitionIndexes
        f(0, I32),                             // CoordinatorEpoch
    ]),
)]; // Markers

// TxnOffsetCommit (28)
const TXN_OFFSET_COMMIT: &[Field] = &[
    f(0, Str), // TransactionalId
    f(0, Str), // GroupId
    f(0, I64), // ProducerId
    f(0, I16), // ProducerEpoch
    f(3, I32), // GenerationId
    f(3, Str), // MemberId
    f(3, Str), // GroupInstanceId
    f(
        0,
        Arr(&[
            f(0, Str), // Name
            // Partitions: PartitionIndex, CommittedOffset, CommittedLeaderEpoch, CommittedMetadata
            f(0, Arr(&[f(0, I32), f(0, I64), f(2, I32), f(0, Str)])),
        ]),
    ),
];

// DeleteGroups (42)
const DELETE_GROUPS: &[Field] = &[f(0, STRINGS)]; // GroupsNames

// OffsetDelete (47)
const OFFSET_DELETE: &[Field] = &[
    f(0, Str),                                        // GroupId
    f(0, Arr(&[f(0, Str), f(0, Arr(&[f(0, I32)]))])), // Topics: Name, Partitions: PartitionIndex
];

// ConsumerGroupHeartbeat (68)
const CONSUMER_GROUP_HEARTBEAT: &[Field] = &[
    f(0, Str),                              // GroupId
    f(0, Str),                              // MemberId
    f(0, I32),                              // MemberEpoch
    f(0, Str),                              // InstanceId
    f(0, Str),                              // RackId
    f(0, I32),                              // RebalanceTimeoutMs
    f(0, STRINGS),                          // SubscribedTopicNames
    f(1, Str),                              // SubscribedTopicRegex
    f(0, Str),                              // ServerAssignor
    f(0, Arr(&[f(0, Uuid), f(0, INT32S)])), // TopicPartitions: TopicId, Partitions
];

// ConsumerGroupDescribe (69)
const CONSUMER_GROUP_DESCRIBE: &[Field] = &[
    f(0, STRINGS), // GroupIds
    f(0, Bool),    // IncludeAuthorizedOperations
];

// SaslAuthenticate (36)
const SASL_AUTHENTICATE: &[Field] = &[f(0, Bytes)]; // AuthBytes

// IncrementalAlterConfigs (44)
const INCREMENTAL_ALTER_CONFIGS: &[Field] = &[
    f(
        0,
        Arr(&[
            f(0, I8),  // ResourceType
            f(0, Str), // ResourceName
            // Configs: Name, ConfigOperation, Value
            f(0, Arr(&[f(0, Str), f(0, I8), f(0, Str)])),
        ]),
    ),
    f(0, Bool), // ValidateOnly
];

// DescribeCluster (60)
const DESCRIBE_CLUSTER: &[Field] = &[
    f(0, Bool), // IncludeClusterAuthorizedOperations
    f(1, I8),   // EndpointType
    f(2, Bool), // IncludeFencedBrokers
];

// DescribeAcls (29); DeleteAcls (31) filters have the same layout.
const ACL_FILTER: &[Field] = &[
    f(0, I8),  // ResourceTypeFilter
    f(0, Str), // ResourceNameFilter
    f(1, I8),  // PatternTypeFilter
    f(0, Str), // PrincipalFilter
    f(0, Str), // HostFilter
    f(0, I8),  // Operation
    f(0, I8),  // PermissionType
];
const DESCRIBE_ACLS: &[Field] = ACL_FILTER;

// CreateAcls (30)
const CREATE_ACLS: &[Field] = &[f(
    0,
    Arr(&[
        f(0, I8),  // ResourceType
        f(0, Str), // ResourceName
        f(1, I8),  // ResourcePatternType
        f(0, Str), // Principal
        f(0, Str), // Host
        f(0, I8),  // Operation
        f(0, I8),  // PermissionType
    ]),
)];

// DeleteAcls (31)
const DELETE_ACLS: &[Field] = &[f(0, Arr(ACL_FILTER))]; // Filters

// AlterReplicaLogDirs (34): Dirs: Path, Topics: Name, Partitions
const ALTER_REPLICA_LOG_DIRS: &[Field] = &[f(
    0,
    Arr(&[f(0, Str), f(0, Arr(&[f(0, Str), f(0, INT32S)]))]),
)];

// DescribeLogDirs (35)
const DESCRIBE_LOG_DIRS: &[Field] = &[f(0, Arr(&[f(0, Str), f(0, INT32S)]))]; // Topics: Topic, Partitions

// ElectLeaders (43)
const ELECT_LEADERS: &[Field] = &[
    f(1, I8),                              // ElectionType
    f(0, Arr(&[f(0, Str), f(0, INT32S)])), // TopicPartitions (nullable): Topic, Partitions
    f(0, I32),                             // TimeoutMs
];

// AlterPartitionReassignments (45)
const ALTER_PARTITION_REASSIGNMENTS: &[Field] = &[
    f(0, I32),  // TimeoutMs
    f(1, Bool), // AllowReplicationFactorChange
    f(
        0,
        Arr(&[
            f(0, Str),                             // Name
            f(0, Arr(&[f(0, I32), f(0, INT32S)])), // Partitions: PartitionIndex, Replicas (nullable)
        ]),
    ),
];

// ListPartitionReassignments (46): TimeoutMs, Topics (nullable): Name, PartitionIndexes
const LIST_PARTITION_REASSIGNMENTS: &[Field] = &[f(0, I32), f(0, Arr(&[f(0, Str), f(0, INT32S)]))];

// UnregisterBroker (64): BrokerId
const UNREGISTER_BROKER: &[Field] = &[f(0, I32)];

// DescribeQuorum (55): Topics: TopicName, Partitions: PartitionIndex
const DESCRIBE_QUORUM: &[Field] = &[f(0, Arr(&[f(0, Str), f(0, Arr(&[f(0, I32)]))]))];

// UpdateFeatures (57)
const UPDATE_FEATURES: &[Field] = &[
    f(0, I32), // timeoutMs
    f(
        0,
        Arr(&[
            f(0, Str),      // Feature
            f(0, I16),      // MaxVersionLevel
            fr(0, 0, Bool), // AllowDowngrade
            f(1, I8),       // UpgradeType
        ]),
    ),
    f(1, Bool), // ValidateOnly
];

// AddRaftVoter (80): ClusterId, TimeoutMs, VoterId, VoterDirectoryId, Listeners: Name, Host, Port
const ADD_RAFT_VOTER: &[Field] = &[
    f(0, Str),
    f(0, I32),
    f(0, I32),
    f(0, Uuid),
    f(0, Arr(&[f(0, Str), f(0, Str), f(0, I16)])),
];

// RemoveRaftVoter (81): ClusterId, VoterId, VoterDirectoryId
const REMOVE_RAFT_VOTER: &[Field] = &[f(0, Str), f(0, I32), f(0, Uuid)];

// DescribeTopicPartitions (75)
const DESCRIBE_TOPIC_PARTITIONS: &[Field] = &[
    f(0, Arr(&[f(0, Str)])),                  // Topics: Name
    f(0, I32),                                // ResponsePartitionLimit
    f(0, OptStruct(&[f(0, Str), f(0, I32)])), // Cursor: TopicName, PartitionIndex
];

// DescribeClientQuotas (48)
const DESCRIBE_CLIENT_QUOTAS: &[Field] = &[
    f(0, Arr(&[f(0, Str), f(0, I8), f(0, Str)])), // Components: EntityType, MatchType, Match
    f(0, Bool),                                   // Strict
];

// AlterClientQuotas (49)
const ALTER_CLIENT_QUOTAS: &[Field] = &[
    f(
        0,
        Arr(&[
            f(0, Arr(&[f(0, Str), f(0, Str)])), // Entity: EntityType, EntityName
            f(0, Arr(&[f(0, Str), f(0, I64), f(0, Bool)])), // Ops: Key, Value (float64), Remove
        ]),
    ),
    f(0, Bool), // ValidateOnly
];

// DescribeUserScramCredentials (50)
const DESCRIBE_USER_SCRAM_CREDENTIALS: &[Field] = &[f(0, Arr(&[f(0, Str)]))]; // Users: Name

// AlterUserScramCredentials (51)
const ALTER_USER_SCRAM_CREDENTIALS: &[Field] = &[
    f(0, Arr(&[f(0, Str), f(0, I8)])), // Deletions: Name, Mechanism
    // Upsertions: Name, Mechanism, Iterations, Salt, SaltedPassword
    f(
        0,
        Arr(&[f(0, Str), f(0, I8), f(0, I32), f(0, Bytes), f(0, Bytes)]),
    ),
];

// DescribeProducers (61)
const DESCRIBE_PRODUCERS: &[Field] = &[f(0, Arr(&[f(0, Str), f(0, INT32S)]))]; // Topics: Name, PartitionIndexes

// DescribeTransactions (65)
const DESCRIBE_TRANSACTIONS: &[Field] = &[f(0, STRINGS)]; // TransactionalIds

// ListTransactions (66)
const LIST_TRANSACTIONS: &[Field] = &[
    f(0, STRINGS),     // StateFilters
    f(0, ArrOf(&I64)), // ProducerIdFilters
    f(1, I64),         // DurationFilter
    f(2, Str),         // TransactionalIdPattern
];

/// Every request schema in the table, in api-key order.
const APIS: &[Api] = &[
    api(0, 0, 13, 9, PRODUCE),
    api(1, 0, 18, 12, FETCH),
    api(2, 0, 10, 6, LIST_OFFSETS),
    api(3, 0, 13, 9, METADATA),
    api(8, 0, 9, 8, OFFSET_COMMIT),
    api(9, 0, 9, 6, OFFSET_FETCH),
    api(10, 0, 6, 3, FIND_COORDINATOR),
    api(11, 0, 9, 6, JOIN_GROUP),
    api(12, 0, 4, 4, HEARTBEAT),
    api(13, 0, 5, 4, LEAVE_GROUP),
    api(14, 0, 5, 4, SYNC_GROUP),
    api(15, 0, 6, 5, DESCRIBE_GROUPS),
    api(16, 0, 5, 3, LIST_GROUPS),
    api(17, 0, 1, NONE, SASL_HANDSHAKE),
    api(18, 0, 4, 3, API_VERSIONS),
    api(19, 0, 7, 5, CREATE_TOPICS),
    api(20, 0, 6, 4, DELETE_TOPICS),
    api(21, 0, 2, 2, DELETE_RECORDS),
    api(22, 0, 5, 2, INIT_PRODUCER_ID),
    api(23, 0, 4, 4, OFFSET_FOR_LEADER_EPOCH),
    api(24, 0, 5, 3, ADD_PARTITIONS_TO_TXN),
    api(25, 0, 4, 3, ADD_OFFSETS_TO_TXN),
    api(26, 0, 5, 3, END_TXN),
    api(27, 1, 1, 1, WRITE_TXN_MARKERS),
    api(28, 0, 5, 3, TXN_OFFSET_COMMIT),
    api(29, 0, 3, 2, DESCRIBE_ACLS),
    api(30, 0, 3, 2, CREATE_ACLS),
    api(31, 0, 3, 2, DELETE_ACLS),
    api(32, 0, 4, 4, DESCRIBE_CONFIGS),
    api(33, 0, 2, 2, ALTER_CONFIGS),
    api(34, 0, 2, 2, ALTER_REPLICA_LOG_DIRS),
    api(35, 0, 4, 2, DESCRIBE_LOG_DIRS),
    api(36, 0, 2, 2, SASL_AUTHENTICATE),
    api(37, 0, 3, 2, CREATE_PARTITIONS),
    api(42, 0, 2, 2, DELETE_GROUPS),
    api(43, 0, 2, 2, ELECT_LEADERS),
    api(44, 0, 1, 1, INCREMENTAL_ALTER_CONFIGS),
    api(45, 0, 1, 0, ALTER_PARTITION_REASSIGNMENTS),
    api(46, 0, 0, 0, LIST_PARTITION_REASSIGNMENTS),
    api(47, 0, 0, NONE, OFFSET_DELETE),
    api(48, 0, 1, 1, DESCRIBE_CLIENT_QUOTAS),
    api(49, 0, 1, 1, ALTER_CLIENT_QUOTAS),
    api(50, 0, 0, 0, DESCRIBE_USER_SCRAM_CREDENTIALS),
    api(51, 0, 0, 0, ALTER_USER_SCRAM_CREDENTIALS),
    api(55, 0, 2, 0, DESCRIBE_QUORUM),
    api(57, 0, 2, 0, UPDATE_FEATURES),
    api(60, 0, 2, 0, DESCRIBE_CLUSTER),
    api(61, 0, 0, 0, DESCRIBE_PRODUCERS),
    api(64, 0, 0, 0, UNREGISTER_BROKER),
    api(65, 0, 0, 0, DESCRIBE_TRANSACTIONS),
    api(66, 0, 2, 0, LIST_TRANSACTIONS),
    api(68, 0, 1, 0, CONSUMER_GROUP_HEARTBEAT),
    api(69, 0, 1, 0, CONSUMER_GROUP_DESCRIBE),
    api(75, 0, 0, 0, DESCRIBE_TOPIC_PARTITIONS),
    api(80, 0, 0, 0, ADD_RAFT_VOTER),
    api(81, 0, 0, 0, REMOVE_RAFT_VOTER),
];

fn schema(api_key: i16, api_version: i16) -> Option<&'static Api> {
    APIS.iter()
        .find(|a| a.key == api_key && api_version >= a.min && api_version <= a.max)
}

#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;
