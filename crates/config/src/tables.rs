//! The tables of known configs: every broker key Runnel reads (with Kafka's default, or Runnel's
//! where it differs) and every Kafka 4.x topic config with the broker key it defaults from.

/// A config's type, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// true/false.
    Boolean,
    /// Free text.
    String,
    /// 32-bit integer.
    Int,
    /// 16-bit integer.
    Short,
    /// 64-bit integer.
    Long,
    /// Floating point.
    Double,
    /// Comma-separated list.
    List,
    /// A Java class name.
    Class,
    /// A secret.
    Password,
}

/// A broker config key.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    /// Key.
    pub name: &'static str,
    /// Default value (None: unset).
    pub default: Option<&'static str>,
    /// Type.
    pub kind: ConfigKind,
    /// One line of documentation.
    pub doc: &'static str,
    /// Whether it can only be set at start-up.
    pub read_only: bool,
    /// Whether the value is secret.
    pub sensitive: bool,
}

/// A topic config.
#[derive(Debug, Clone)]
pub struct TopicConfigEntry {
    /// Topic config name.
    pub name: &'static str,
    /// The broker key that supplies the default, if any.
    pub broker_key: Option<&'static str>,
    /// Kafka's default when the broker key is unset too.
    pub default: Option<&'static str>,
    /// Type.
    pub kind: ConfigKind,
    /// Smallest accepted value for numeric configs.
    pub min: i64,
    /// One line of documentation.
    pub doc: &'static str,
    /// Whether the value is secret.
    pub sensitive: bool,
}

use ConfigKind::*;

const fn b(
    name: &'static str,
    default: Option<&'static str>,
    kind: ConfigKind,
    doc: &'static str,
) -> ConfigEntry {
    ConfigEntry {
        name,
        default,
        kind,
        doc,
        read_only: true,
        sensitive: false,
    }
}

/// A secret broker config (its value is never shown).
const fn secret(name: &'static str, doc: &'static str) -> ConfigEntry {
    ConfigEntry {
        sensitive: true,
        ..b(name, None, Password, doc)
    }
}

/// A broker config that can be changed at run time (IncrementalAlterConfigs on the broker).
const fn dynamic(
    name: &'static str,
    default: Option<&'static str>,
    kind: ConfigKind,
    doc: &'static str,
) -> ConfigEntry {
    ConfigEntry {
        read_only: false,
        ..b(name, default, kind, doc)
    }
}

/// The smallest value of each numeric broker key the loader checks (a smaller one stops
/// start-up); the configuration reference shows the same floor as the key's valid values.
const BROKER_MINIMUMS: &[(&str, i64)] = &[
    ("default.replication.factor", 1),
    ("group.consumer.heartbeat.interval.ms", 1),
    ("group.consumer.session.timeout.ms", 1),
    ("group.initial.rebalance.delay.ms", 0),
    ("group.max.size", 1),
    ("log.cleaner.backoff.ms", 0),
    ("log.cleaner.dedupe.buffer.size", 1 << 20),
    ("log.cleaner.threads", 1),
    ("log.flush.interval.messages", 1),
    ("log.flush.interval.ms", 0),
    ("log.index.interval.bytes", 0),
    ("log.index.size.max.bytes", 4),
    ("log.retention.bytes", -1),
    ("log.retention.check.interval.ms", 1),
    ("log.retention.ms", -1),
    ("log.roll.ms", 1),
    ("log.segment.bytes", 14),
    ("log.segment.delete.delay.ms", 0),
    ("message.max.bytes", 0),
    ("min.insync.replicas", 1),
    ("node.id", 0),
    ("num.partitions", 1),
    ("offset.metadata.max.bytes", 0),
    ("offsets.commit.timeout.ms", 1),
    ("offsets.retention.check.interval.ms", 1),
    ("offsets.retention.minutes", 1),
    ("offsets.topic.num.partitions", 1),
    ("offsets.topic.replication.factor", 1),
    ("offsets.topic.segment.bytes", 1),
    ("socket.request.max.bytes", 1),
    ("transaction.max.timeout.ms", 1),
    ("transaction.state.log.min.isr", 1),
    ("transaction.state.log.num.partitions", 1),
    ("transaction.state.log.replication.factor", 1),
    ("transaction.state.log.segment.bytes", 1),
    ("transactional.id.expiration.ms", 1),
];

/// The smallest value the broker accepts for `key`, when it checks one.
pub fn broker_min(key: &str) -> Option<i64> {
    BROKER_MINIMUMS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, m)| *m)
}

const BROKER: &[ConfigEntry] = &[
    b("advertised.listeners", None, List, "Listeners to publish to clients, if different from listeners."),
    b("allow.everyone.if.no.acl.found", Some("false"), Boolean, "With an authorizer: a resource that no ACL names is open to everyone (Kafka's default: false, refused)."),
    b("authorizer.class.name", None, Class, "org.apache.kafka.metadata.authorizer.StandardAuthorizer turns ACL authorization on (ACLs in the metadata log, managed with kafka-acls); unset: no authorization."),
    b("auto.create.topics.enable", Some("false"), Boolean, "Create a topic when a client asks for metadata of an unknown one (Runnel's default is false)."),
    b("auto.leader.rebalance.enable", Some("true"), Boolean, "The active controller moves leaderships back to the preferred replicas (checked every leader.imbalance.check.interval.seconds)."),
    b("broker.heartbeat.interval.ms", Some("2000"), Int, "How often a broker heartbeats to the active controller."),
    b("broker.rack", None, String, "Rack of this broker; replicas of a partition are spread over racks."),
    b("broker.session.timeout.ms", Some("9000"), Int, "A broker that has not heartbeaten for this long is fenced."),
    b("cluster.id", None, String, "Cluster id used when the metadata log is first created (generated when unset)."),
    b("compression.type", Some("producer"), String, "Final compression type for topics; 'producer' keeps the producer's codec."),
    b("connection.failed.authentication.delay.ms", Some("100"), Int, "Delay before a connection whose SASL authentication failed gets its error response and is closed."),
    b("connections.max.reauth.ms", Some("0"), Long, "Lifetime of a SASL session (KIP-368): the client re-authenticates before it ends or its connection is closed (0: no limit); per mechanism with listener.name.<l>.<mechanism>.connections.max.reauth.ms."),
    b("console.listeners", Some(""), List, "Runnel only: where the web console listens beside the broker (http://host:port, comma-separated; empty, the default: off). It reaches the cluster through this broker's first client listener; a secured listener needs the standalone `runnel console` with -X client settings."),
    b("console.users.file", None, String, "Runnel only: the web console's users, one name:role:hash per line (role admin or read-only; hashes from `runnel console hash-password`); unset: no login (everyone is an admin)."),
    b("controlled.shutdown.enable", Some("true"), Boolean, "On SIGTERM the broker first has the active controller move its leaderships away (waiting at most broker.session.timeout.ms)."),
    b("controller.listener.names", None, List, "Listeners the controller serves the quorum on (the first is used to reach other controllers)."),
    b("controller.quorum.bootstrap.servers", None, List, "Controllers to contact first (host:port), when the voters are not listed."),
    b("controller.quorum.voters", None, List, "The voters of the metadata quorum as id@host:port; unset: this node alone."),
    b("default.replication.factor", Some("1"), Short, "Replication factor of topics created without one."),
    dynamic("follower.replication.throttled.rate", Some("9223372036854775807"), Long, "Bytes per second a follower fetches for the replicas listed in follower.replication.throttled.replicas while they are outside the ISR (set at run time, per broker or as the cluster default)."),
    b("group.consumer.heartbeat.interval.ms", Some("5000"), Int, "Heartbeat interval given to members of consumer-protocol (KIP-848) groups."),
    b("group.consumer.session.timeout.ms", Some("45000"), Int, "Session timeout of members of consumer-protocol (KIP-848) groups."),
    b("group.initial.rebalance.delay.ms", Some("3000"), Int, "Delay before the first rebalance of a new group."),
    b("group.max.session.timeout.ms", Some("1800000"), Int, "Largest session timeout a consumer may ask for."),
    b("group.max.size", Some("2147483647"), Int, "Largest number of members a classic group may have."),
    b("group.min.session.timeout.ms", Some("6000"), Int, "Smallest session timeout a consumer may ask for."),
    b("inter.broker.listener.name", None, String, "Listener brokers use to reach each other (default: the first listener that is not a controller listener)."),
    b("leader.imbalance.check.interval.seconds", Some("300"), Long, "How often the active controller checks for partitions not led by their preferred replica."),
    dynamic("leader.replication.throttled.rate", Some("9223372036854775807"), Long, "Bytes per second a leader sends to the replicas listed in leader.replication.throttled.replicas while they are outside the ISR (set at run time)."),
    b("listener.security.protocol.map", Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"), String, "Security protocol of each listener name."),
    b("listeners", Some("PLAINTEXT://localhost:9092"), List, "Addresses to listen on, as NAME://host:port."),
    b("log.cleaner.backoff.ms", Some("15000"), Long, "How long a log cleaner thread sleeps when no log needs cleaning."),
    b("log.cleaner.dedupe.buffer.size", Some("134217728"), Long, "Memory of the cleaner's key maps, shared by its threads."),
    b("log.cleaner.delete.retention.ms", Some("86400000"), Long, "Default delete.retention.ms: how long tombstones stay once cleaned."),
    b("log.cleaner.enable", Some("true"), Boolean, "Run the log cleaner (compaction of topics with cleanup.policy compact)."),
    b("log.cleaner.max.compaction.lag.ms", Some("9223372036854775807"), Long, "Default max.compaction.lag.ms."),
    b("log.cleaner.min.cleanable.ratio", Some("0.5"), Double, "Default min.cleanable.dirty.ratio."),
    b("log.cleaner.min.compaction.lag.ms", Some("0"), Long, "Default min.compaction.lag.ms."),
    b("log.cleaner.threads", Some("1"), Int, "Log cleaner threads."),
    b("log.cleanup.policy", Some("delete"), List, "Default cleanup policy of topics (delete, compact or both)."),
    b("log.dir", None, String, "Log directory, used when log.dirs is unset."),
    b("log.dirs", Some("./data"), List, "Directories holding the logs (Runnel's default is ./data); a new partition goes to the one holding the fewest."),
    b("log.flush.interval.messages", Some("9223372036854775807"), Long, "Messages appended to a partition before it is fsynced."),
    b("log.flush.interval.ms", None, Long, "Longest time a message stays unflushed; unset leaves flushing to the OS."),
    b("log.format", Some("text"), String, "Runnel only: how the broker writes its own log lines to stdout: text (human-readable) or json (one JSON object a line). Levels come from RUNNEL_LOG (default info) and change at run time through the broker-logger configs."),
    b("log.index.interval.bytes", Some("4096"), Int, "Bytes between entries of the offset index."),
    b("log.index.size.max.bytes", Some("10485760"), Int, "Largest size of an offset index file."),
    b("log.message.timestamp.type", Some("CreateTime"), String, "CreateTime or LogAppendTime."),
    b("log.retention.bytes", Some("-1"), Long, "Largest size of a partition before old segments are deleted (-1: no limit)."),
    b("log.retention.check.interval.ms", Some("300000"), Long, "How often retention is checked."),
    b("log.retention.hours", Some("168"), Int, "Hours to keep a segment (overridden by log.retention.minutes and .ms)."),
    b("log.retention.minutes", None, Int, "Minutes to keep a segment (overridden by log.retention.ms)."),
    b("log.retention.ms", None, Long, "Milliseconds to keep a segment (-1: forever)."),
    b("log.roll.hours", Some("168"), Int, "Hours before a new segment is rolled (overridden by log.roll.ms)."),
    b("log.roll.ms", None, Long, "Milliseconds before a new segment is rolled."),
    b("log.segment.bytes", Some("1073741824"), Int, "Largest size of a segment file."),
    b("log.segment.delete.delay.ms", Some("60000"), Long, "Delay before a deleted segment's file is removed."),
    b("max.connections", Some("2147483647"), Int, "Connections the broker accepts at once on its client listeners (per listener with listener.name.<l>.max.connections); past it, accepting waits until one closes. Inter-broker and controller listeners are not held back."),
    b("max.connections.per.ip", Some("2147483647"), Int, "Connections accepted from one IP address at once; a connection past it is closed at once."),
    b("max.connections.per.ip.overrides", Some(""), String, "Per-IP limits overriding max.connections.per.ip: host-or-ip:count pairs separated by commas."),
    b("message.max.bytes", Some("1048588"), Int, "Largest record batch a topic accepts by default."),
    b("metadata.log.dir", None, String, "Directory of the metadata log (__cluster_metadata-0); default: the first of log.dirs."),
    b("metrics.listeners", Some(""), List, "Runnel only: where the HTTP endpoint of metrics (/metrics, the Prometheus text format) and health checks (/health/live, /health/ready) listens: http://host:port, comma-separated; empty (the default): off."),
    b("min.insync.replicas", Some("1"), Int, "Replicas that must acknowledge an acks=all write."),
    b("node.id", Some("1"), Int, "This node's id."),
    b("num.partitions", Some("1"), Int, "Partition count of topics created without one."),
    b("offset.metadata.max.bytes", Some("4096"), Int, "Largest metadata string stored with a committed offset."),
    b("offsets.commit.timeout.ms", Some("5000"), Int, "How long a coordinator waits for a write to reach the in-sync replicas before answering COORDINATOR_NOT_AVAILABLE."),
    b("offsets.retention.check.interval.ms", Some("600000"), Long, "How often expired committed offsets are removed."),
    b("offsets.retention.minutes", Some("10080"), Int, "Minutes committed offsets of an empty group are kept."),
    b("offsets.topic.num.partitions", Some("50"), Int, "Partitions of __consumer_offsets."),
    b("offsets.topic.replication.factor", Some("3"), Short, "Replication factor of __consumer_offsets (capped at the broker count)."),
    b("offsets.topic.segment.bytes", Some("104857600"), Int, "Segment size of __consumer_offsets, set when it is created (kept small so it compacts quickly)."),
    b("process.roles", Some("broker,controller"), List, "broker, controller, or both (Runnel's default: both, a cluster of one)."),
    b("quota.window.num", Some("11"), Int, "Sample windows client quotas are measured over (producer_byte_rate, consumer_byte_rate, request_percentage)."),
    b("quota.window.size.seconds", Some("1"), Int, "Length of one client quota sample window."),
    dynamic("replica.alter.log.dirs.io.max.bytes.per.second", Some("9223372036854775807"), Long, "Bytes per second copied when AlterReplicaLogDirs moves a replica between this broker's log dirs (set at run time)."),
    b("replica.lag.time.max.ms", Some("30000"), Long, "A follower that has not caught up for this long leaves the ISR."),
    b("runnel.fsync.on.ack", Some("false"), Boolean, "Runnel only: fsync before acknowledging acks=all writes."),
    b("runnel.ssl.reload.interval.ms", Some("5000"), Long, "Runnel only: how often TLS listeners check their keystore and truststore files and reload them when they changed (0: never)."),
    b("sasl.enabled.mechanisms", Some("GSSAPI"), List, "SASL mechanisms served on SASL listeners (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER; Kafka's default GSSAPI is not served); per listener with listener.name.<l>.sasl.enabled.mechanisms."),
    secret("sasl.jaas.config", "JAAS login module of SASL listeners (listener.name.<l>.<mechanism>.sasl.jaas.config takes precedence): PlainLoginModule's user_<name>=\"<password>\" users; username/password for inter-broker connections."),
    b("sasl.mechanism.controller.protocol", Some("GSSAPI"), String, "SASL mechanism nodes authenticate with to the controllers when the controller listener uses SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; the credentials are the username/password of that listener's JAAS entry for it)."),
    b("sasl.mechanism.inter.broker.protocol", Some("GSSAPI"), String, "SASL mechanism brokers authenticate with to each other when the inter-broker listener uses SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; the credentials are the username/password of that listener's JAAS entry for it)."),
    b("sasl.oauthbearer.clock.skew.seconds", Some("30"), Int, "Seconds of clock difference allowed when checking a signed OAUTHBEARER token's exp, iat and nbf."),
    b("sasl.oauthbearer.expected.audience", None, List, "Audiences a signed OAUTHBEARER token's aud must name one of (unset: aud is not checked)."),
    b("sasl.oauthbearer.expected.issuer", None, String, "The issuer a signed OAUTHBEARER token's iss must equal (unset: iss is not checked)."),
    b("sasl.oauthbearer.jwks.endpoint.refresh.ms", Some("3600000"), Long, "How often the JWKS file is re-read (a token naming an unknown kid also re-reads it, rate limited)."),
    b("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", Some("10000"), Long, "Longest wait between JWKS re-reads for an unknown kid or after a failed re-read."),
    b("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", Some("100"), Long, "First wait between JWKS re-reads for an unknown kid or after a failed re-read (doubling up to the max)."),
    b("sasl.oauthbearer.jwks.endpoint.url", None, String, "file: URL of the JWKS that signed OAUTHBEARER tokens are verified against (with OAuthBearerValidatorCallbackHandler); http(s) endpoints are not served."),
    b("sasl.oauthbearer.scope.claim.name", Some("scope"), String, "The claim holding a signed OAUTHBEARER token's scope."),
    b("sasl.oauthbearer.sub.claim.name", Some("sub"), String, "The claim naming a signed OAUTHBEARER token's principal (User:<value>)."),
    b("sasl.server.callback.handler.class", None, Class, "OAUTHBEARER token validator, as listener.name.<l>.oauthbearer.sasl.server.callback.handler.class: org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler (signed JWTs, JWKS) or Kafka's unsecured default; not served for other mechanisms."),
    b("sasl.server.max.receive.size", Some("524288"), Int, "Largest request accepted before SASL authentication completes; larger ones fail the authentication."),
    b("socket.request.max.bytes", Some("104857600"), Int, "Largest request accepted; larger frames close the connection."),
    b("ssl.cipher.suites", None, List, "TLS cipher suites allowed (IANA names, e.g. TLS_AES_256_GCM_SHA384); unset: rustls' safe defaults."),
    b("ssl.client.auth", Some("none"), String, "none, requested or required: whether SSL listeners ask clients for a certificate (its subject becomes the principal). SASL_SSL listeners take it only listener-prefixed, as Kafka (KIP-684)."),
    b("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.3"), List, "TLS versions accepted (TLSv1.2, TLSv1.3)."),
    b("ssl.endpoint.identification.algorithm", Some("https"), String, "https: connections to other brokers check the host name against their certificate; empty: they do not."),
    secret("ssl.key.password", "Password of an encrypted PKCS#8 private key (ssl.keystore.key or the key in ssl.keystore.location)."),
    secret("ssl.keystore.certificate.chain", "The listener's certificate chain in PEM, inline (with ssl.keystore.type=PEM)."),
    secret("ssl.keystore.key", "The listener's private key in PEM (PKCS#8, or PKCS#1/SEC1), inline (with ssl.keystore.type=PEM)."),
    b("ssl.keystore.location", None, String, "File holding the listener's private key and certificate chain in PEM (ssl.keystore.type=PEM); reloaded when it changes."),
    secret("ssl.keystore.password", "Keystore password: not used with PEM keystores (Kafka refuses it there too; use ssl.key.password)."),
    b("ssl.keystore.type", Some("JKS"), String, "Keystore format; Runnel reads PEM only (JKS and PKCS12 keystores convert with keytool / openssl, see the README)."),
    b("ssl.principal.mapping.rules", Some("DEFAULT"), String, "Rules mapping a client certificate's subject (RFC 2253) to a principal name: RULE:pattern/replacement/[LU], ..., DEFAULT (the subject as it is)."),
    b("ssl.protocol", Some("TLSv1.3"), String, "TLS protocol (TLSv1.2 or TLSv1.3); the versions accepted are ssl.enabled.protocols."),
    secret("ssl.truststore.certificates", "Trusted CA certificates in PEM, inline (with ssl.truststore.type=PEM): client certificates are checked against them, as are other brokers'."),
    b("ssl.truststore.location", None, String, "File of trusted CA certificates in PEM (ssl.truststore.type=PEM); reloaded when it changes."),
    secret("ssl.truststore.password", "Truststore password: not used with PEM trust stores."),
    b("ssl.truststore.type", Some("JKS"), String, "Trust store format; Runnel reads PEM only."),
    b("super.users", None, String, "Principals allowed everything by the authorizer, separated by ';' (User:admin;User:broker)."),
    b("transaction.max.timeout.ms", Some("900000"), Int, "Largest transaction.timeout.ms a transactional producer may ask for."),
    b("transaction.state.log.min.isr", Some("2"), Int, "min.insync.replicas of __transaction_state (capped at its replication factor)."),
    b("transaction.state.log.num.partitions", Some("50"), Int, "Partitions of __transaction_state."),
    b("transaction.state.log.replication.factor", Some("3"), Short, "Replication factor of __transaction_state (capped at the broker count)."),
    b("transaction.state.log.segment.bytes", Some("104857600"), Int, "Segment size of __transaction_state, set when it is created (kept small so it compacts quickly)."),
    b("transactional.id.expiration.ms", Some("604800000"), Int, "How long a transactional id without an open transaction is kept after its last use."),
    b("unclean.leader.election.enable", Some("false"), Boolean, "Whether a replica outside the ISR may become leader when no ISR member is left."),
];

/// Kafka broker keys Runnel accepts without using them (so a Kafka server.properties loads).
const ACCEPTED_KAFKA_KEYS: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "delete.topic.enable",
    "queued.max.requests",
    "num.replica.fetchers",
    // ZooKeeper-era; Kafka 4.0 removed it (KAFKA-18743): its controller, like Runnel's, moves
    // every partition whose preferred replica can lead.
    "leader.imbalance.per.broker.percentage",
];

const fn t(
    name: &'static str,
    broker_key: Option<&'static str>,
    default: Option<&'static str>,
    kind: ConfigKind,
    min: i64,
    doc: &'static str,
) -> TopicConfigEntry {
    TopicConfigEntry {
        name,
        broker_key,
        default,
        kind,
        min,
        doc,
        sensitive: false,
    }
}

const I64_MAX: &str = "9223372036854775807";

const TOPIC: &[TopicConfigEntry] = &[
    t(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        Some("delete"),
        List,
        0,
        "delete (retention by time and size), compact (the log cleaner keeps the latest record of every key), or both.",
    ),
    t(
        "compression.gzip.level",
        Some("compression.gzip.level"),
        Some("-1"),
        Int,
        -1,
        "Compression level for gzip.",
    ),
    t(
        "compression.lz4.level",
        Some("compression.lz4.level"),
        Some("9"),
        Int,
        1,
        "Compression level for lz4.",
    ),
    t(
        "compression.type",
        Some("compression.type"),
        Some("producer"),
        String,
        0,
        "Final compression type; 'producer' keeps the producer's codec.",
    ),
    t(
        "compression.zstd.level",
        Some("compression.zstd.level"),
        Some("3"),
        Int,
        -131072,
        "Compression level for zstd.",
    ),
    t(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        Some("86400000"),
        Long,
        0,
        "How long delete tombstones are kept on compacted topics.",
    ),
    t(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        Some("60000"),
        Long,
        0,
        "Delay before a deleted segment's file is removed.",
    ),
    t(
        "flush.messages",
        Some("log.flush.interval.messages"),
        Some(I64_MAX),
        Long,
        1,
        "Messages appended before an fsync.",
    ),
    t(
        "flush.ms",
        Some("log.flush.interval.ms"),
        Some(I64_MAX),
        Long,
        0,
        "Longest time before an fsync.",
    ),
    t(
        "follower.replication.throttled.replicas",
        None,
        Some(""),
        List,
        0,
        "Follower replicas to throttle.",
    ),
    t(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        Some("4096"),
        Int,
        0,
        "Bytes between offset index entries.",
    ),
    t(
        "leader.replication.throttled.replicas",
        None,
        Some(""),
        List,
        0,
        "Leader replicas to throttle.",
    ),
    t(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        Some("-2"),
        Long,
        -2,
        "Local retention size with tiered storage.",
    ),
    t(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        Some("-2"),
        Long,
        -2,
        "Local retention time with tiered storage.",
    ),
    t(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        Some(I64_MAX),
        Long,
        1,
        "Longest time a record stays uncompacted.",
    ),
    t(
        "max.message.bytes",
        Some("message.max.bytes"),
        Some("1048588"),
        Int,
        0,
        "Largest record batch the topic accepts.",
    ),
    t(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        Some("3600000"),
        Long,
        0,
        "How far in the future a timestamp may be.",
    ),
    t(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        Some(I64_MAX),
        Long,
        0,
        "How far in the past a timestamp may be.",
    ),
    t(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        Some("CreateTime"),
        String,
        0,
        "CreateTime or LogAppendTime.",
    ),
    t(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        Some("0.5"),
        Double,
        0,
        "Dirty ratio that triggers compaction.",
    ),
    t(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        Some("0"),
        Long,
        0,
        "Shortest time a record stays uncompacted.",
    ),
    t(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        Some("1"),
        Int,
        1,
        "Replicas that must acknowledge an acks=all write.",
    ),
    t(
        "preallocate",
        Some("log.preallocate"),
        Some("false"),
        Boolean,
        0,
        "Preallocate segment files.",
    ),
    t(
        "remote.log.copy.disable",
        None,
        Some("false"),
        Boolean,
        0,
        "Stop copying to tiered storage.",
    ),
    t(
        "remote.log.delete.on.disable",
        None,
        Some("false"),
        Boolean,
        0,
        "Delete tiered data when tiering is turned off.",
    ),
    t(
        "remote.storage.enable",
        None,
        Some("false"),
        Boolean,
        0,
        "Tiered storage for this topic.",
    ),
    t(
        "retention.bytes",
        Some("log.retention.bytes"),
        Some("-1"),
        Long,
        -1,
        "Largest partition size before old segments are deleted.",
    ),
    t(
        "retention.ms",
        Some("log.retention.ms"),
        Some("604800000"),
        Long,
        -1,
        "How long segments are kept (-1: forever).",
    ),
    t(
        "segment.bytes",
        Some("log.segment.bytes"),
        Some("1073741824"),
        Int,
        14,
        "Largest size of a segment file.",
    ),
    t(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        Some("10485760"),
        Int,
        4,
        "Largest size of an offset index file.",
    ),
    t(
        "segment.jitter.ms",
        Some("log.roll.jitter.ms"),
        Some("0"),
        Long,
        0,
        "Random jitter subtracted from segment.ms.",
    ),
    t(
        "segment.ms",
        Some("log.roll.ms"),
        Some("604800000"),
        Long,
        1,
        "Time after which a segment is rolled.",
    ),
    t(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        Some("false"),
        Boolean,
        0,
        "Allow out-of-sync replicas to become leader.",
    ),
];

/// Every broker key Runnel reads.
pub fn broker_config_entries() -> &'static [ConfigEntry] {
    BROKER
}

/// Every Kafka 4.x topic config.
pub fn topic_config_entries() -> &'static [TopicConfigEntry] {
    TOPIC
}

/// Looks up a broker key.
pub fn broker_entry(name: &str) -> Option<&'static ConfigEntry> {
    BROKER.iter().find(|e| e.name == name)
}

/// Looks up a topic config.
pub fn topic_entry(name: &str) -> Option<&'static TopicConfigEntry> {
    TOPIC.iter().find(|e| e.name == name)
}

/// The broker key behind a listener-prefixed key, as Kafka reads them:
/// `listener.name.<listener>.<key>` or `listener.name.<listener>.<mechanism>.<key>` (SASL
/// settings per mechanism, e.g. `listener.name.sasl_plaintext.plain.sasl.jaas.config`).
pub fn listener_prefixed_entry(name: &str) -> Option<&'static ConfigEntry> {
    let rest = name.strip_prefix("listener.name.")?;
    let (_, key) = rest.split_once('.')?;
    broker_entry(key).or_else(|| key.split_once('.').and_then(|(_, k)| broker_entry(k)))
}

/// The Kafka broker keys Runnel accepts without using.
pub fn accepted_kafka_keys() -> &'static [&'static str] {
    ACCEPTED_KAFKA_KEYS
}

/// Whether a key is a Kafka broker setting Runnel accepts without using.
pub fn is_accepted_kafka_key(name: &str) -> bool {
    ACCEPTED_KAFKA_KEYS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for w in BROKER.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
        for w in TOPIC.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
        for e in TOPIC {
            if let Some(d) = e.default {
                crate::validate_topic_config(e.name, d).unwrap();
            }
        }
    }

    /// Every floor names a numeric broker key.
    #[test]
    fn floors_name_numeric_broker_keys() {
        for (k, _) in BROKER_MINIMUMS {
            let e = broker_entry(k).unwrap_or_else(|| panic!("{k} is not a broker key"));
            assert!(matches!(e.kind, Short | Int | Long), "{k}");
        }
    }
}
