"""ACL authorization (issue 14) with real clients: Kafka's StandardAuthorizer turned on with
authorizer.class.name, ACLs managed with kafka-acls (Apache Kafka's AclCommand 4.1.1 and 4.4.0
with --bootstrap-server: --add / --list / --remove) and librdkafka's admin API, stored in the
metadata log (they survive a restart), and a denial matrix: for each API and resource a principal
without the ACL is refused with Kafka's error (TOPIC_ / GROUP_ / CLUSTER_ /
TRANSACTIONAL_ID_AUTHORIZATION_FAILED), the same principal with the ACL succeeds, a DENY beats an
ALLOW, prefixed patterns cover their names, Metadata hides what may not be described, and a super
user passes a DENY. Without an authorizer the ACL APIs answer SECURITY_DISABLED (kafka-acls
--list says so).

Most clients here are User:ANONYMOUS (a PLAINTEXT listener): that broker runs with
allow.everyone.if.no.acl.found=true and ANONYMOUS holds ALTER on the cluster (to manage ACLs);
"without the ACL" means the resource has ACLs, for User:other only, so that ANONYMOUS is refused
exactly as Kafka refuses a principal no ACL names. A SASL PLAIN broker checks real users with
Kafka's default deny (User:admin a super user, User:alice granted and denied), librdkafka and
kafka-acls --command-config; a 3-node cluster enforces the same ACLs everywhere. About 35 s."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   OffsetSpec, ResourcePatternType, ResourceType)

from helpers import KAFKA_TOOLS_VERSIONS, Broker, Cluster, free_port, kafka_tool

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ME = "User:ANONYMOUS"
OTHER = "User:other"
TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = KafkaError.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = KafkaError.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED = KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def binding(rt, name, op, principal=ME, permission=AclPermissionType.ALLOW,
            pattern=ResourcePatternType.LITERAL):
    return AclBinding(rt, name, pattern, principal, "*", op, permission)


def as_filter(b):
    return AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                            b.operation, b.permission_type)


class Acls:
    """Creates and deletes ACLs through librdkafka's admin client (CreateAcls / DeleteAcls), and
    waits until the broker enforces them (every ACL is in the metadata log before the answer)."""

    def __init__(self, admin):
        self.admin = admin

    def add(self, *bindings):
        for f in self.admin.create_acls(list(bindings)).values():
            assert f.result(30) is None

    def remove(self, *bindings):
        for f in self.admin.delete_acls([as_filter(b) for b in bindings]).values():
            deleted = f.result(30)
            assert len(deleted) >= 1, f"no ACL matched {bindings}"


def error_code(exc):
    assert isinstance(exc, KafkaException), repr(exc)
    return exc.args[0].code()


def future_error(f):
    try:
        f.result(30)
    except KafkaException as e:
        return error_code(e)
    return None


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("acl"), {
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "true",
        "offsets.topic.num.partitions": "2",
        "transaction.state.log.num.partitions": "2",
        "group.initial.rebalance.delay.ms": "0",
    })
    b.start()
    yield b
    b.kill9()


@pytest.fixture(scope="module")
def conf(broker):
    return {"bootstrap.servers": broker.bootstrap}


@pytest.fixture(scope="module")
def acls(conf):
    admin = AdminClient(conf)
    a = Acls(admin)
    # ANONYMOUS may manage ACLs: ALTER on the cluster (which also allows DESCRIBE on it).
    a.add(binding(ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER))
    return a


def fresh(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_topic(conf, name, partitions=1):
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)


def produce_error(conf, topic, **extra):
    """Produces one record; returns the delivery error code (None: delivered)."""
    errors = []
    p = Producer({**conf, "message.timeout.ms": 15000, **extra})
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1
    return errors[0].code() if errors[0] is not None else None


def consume_outcome(conf, topic, group=None, timeout=20):
    """Reads partition 0 of `topic` (assigned, or subscribed with `group`); returns the first
    error code or "ok" once a record arrives."""
    c = Consumer({**conf, "group.id": group or fresh("g"), "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        if group:
            c.subscribe([topic])
        else:
            c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return m.error().code()
            return "ok"
        return "timeout"
    finally:
        c.close()


def test_kafka_acls_add_list_remove_both_versions(broker, acls, tmp_path):
    for version in KAFKA_TOOLS_VERSIONS:
        topic = fresh("tool")
        common = ("--bootstrap-server", broker.bootstrap)
        rc, out, err = kafka_tool("kafka-acls", *common, "--add", "--allow-principal", "User:alice",
                                  "--operation", "Read", "--operation", "Describe", "--topic", topic,
                                  "--resource-pattern-type", "prefixed", version=version)
        assert rc == 0, err
        rc, out, err = kafka_tool("kafka-acls", *common, "--add", "--deny-principal", "User:bob",
                                  "--operation", "All", "--group", f"{topic}-g", version=version)
        assert rc == 0, err
        rc, out, err = kafka_tool("kafka-acls", *common, "--list", "--topic", topic,
                                  "--resource-pattern-type", "prefixed", version=version)
        assert rc == 0, err
        assert f"resourceType=TOPIC, name={topic}, patternType=PREFIXED" in out, out
        assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in out, out
        assert "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)" in out
        # MATCH: every pattern that applies to a name (the prefixed ACL covers topic-x).
        rc, out, err = kafka_tool("kafka-acls", *common, "--list", "--topic", f"{topic}-x",
                                  "--resource-pattern-type", "match", version=version)
        assert rc == 0 and f"name={topic}, patternType=PREFIXED" in out, out + err
        rc, out, err = kafka_tool("kafka-acls", *common, "--list", "--principal", "User:bob",
                                  version=version)
        assert rc == 0 and f"name={topic}-g" in out and "permissionType=DENY" in out, out + err
        rc, out, err = kafka_tool("kafka-acls", *common, "--remove", "--force", "--group",
                                  f"{topic}-g", version=version)
        assert rc == 0, err
        rc, out, err = kafka_tool("kafka-acls", *common, "--remove", "--force", "--topic", topic,
                                  "--resource-pattern-type", "prefixed", version=version)
        assert rc == 0, err
        rc, out, err = kafka_tool("kafka-acls", *common, "--list", version=version)
        assert rc == 0 and topic not in out, out


def test_invalid_acls_are_refused(acls):
    bad = binding(ResourceType.BROKER, "not-the-cluster", AclOperation.ALTER)
    for f in acls.admin.create_acls([bad]).values():
        assert future_error(f) == KafkaError.INVALID_REQUEST


def test_metadata_hides_topics_that_may_not_be_described(conf, acls):
    topic = fresh("meta")
    make_topic(conf, topic)
    admin = AdminClient(conf)
    assert topic in admin.list_topics(timeout=10).topics
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.READ, principal=OTHER))
    md = admin.list_topics(timeout=10)
    assert topic not in md.topics, "an all-topics Metadata answer lists only describable topics"
    md = admin.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error.code() == TOPIC_DENIED
    # WRITE implies DESCRIBE.
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.WRITE))
    md = admin.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is None and len(md.topics[topic].partitions) == 1


def test_produce_needs_write_and_deny_wins(conf, acls):
    topic = fresh("prod")
    make_topic(conf, topic)
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.ALL, principal=OTHER))
    assert produce_error(conf, topic) == TOPIC_DENIED
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.WRITE))
    assert produce_error(conf, topic) is None
    # A DENY on a prefix beats the literal ALLOW.
    deny = binding(ResourceType.TOPIC, "prod-", AclOperation.WRITE,
                   permission=AclPermissionType.DENY, pattern=ResourcePatternType.PREFIXED)
    acls.add(deny)
    assert produce_error(conf, topic) == TOPIC_DENIED
    acls.remove(deny)
    assert produce_error(conf, topic) is None


def test_fetch_and_list_offsets_need_read_and_describe(conf, acls):
    topic = fresh("fetch")
    make_topic(conf, topic)
    assert produce_error(conf, topic) is None
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.WRITE, principal=OTHER))
    admin = AdminClient(conf)
    tp = TopicPartition(topic, 0)
    # Without DESCRIBE librdkafka cannot even find the partition's leader (Metadata refuses the
    # topic); with it, ListOffsets (which needs DESCRIBE) answers.
    assert future_error(admin.list_offsets({tp: OffsetSpec.latest()})[tp]) is not None
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.DESCRIBE))
    admin = AdminClient(conf)  # a client without the refused metadata cached
    assert admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(30).offset == 1
    # DESCRIBE does not imply READ.
    assert consume_outcome(conf, topic) == TOPIC_DENIED
    acls.add(binding(ResourceType.TOPIC, topic, AclOperation.READ))
    assert consume_outcome(conf, topic) == "ok"


def test_consumer_group_needs_read_on_the_group(conf, acls):
    topic, group = fresh("grp"), fresh("grp-g")
    make_topic(conf, topic)
    assert produce_error(conf, topic) is None
    acls.add(binding(ResourceType.GROUP, group, AclOperation.READ, principal=OTHER))
    assert consume_outcome(conf, topic, group=group) == GROUP_DENIED
    admin = AdminClient(conf)
    f = admin.describe_consumer_groups([group])[group]
    assert future_error(f) == GROUP_DENIED
    listed = admin.list_consumer_groups().result(30)
    acls.add(binding(ResourceType.GROUP, "grp-", AclOperation.READ,
                     pattern=ResourcePatternType.PREFIXED))
    assert consume_outcome(conf, topic, group=group) == "ok"
    assert admin.describe_consumer_groups([group])[group].result(30).group_id == group
    # Deleting needs DELETE on the group.
    assert future_error(admin.delete_consumer_groups([group])[group]) == GROUP_DENIED
    acls.add(binding(ResourceType.GROUP, group, AclOperation.DELETE))
    assert future_error(admin.delete_consumer_groups([group])[group]) is None
    assert listed is not None


def test_topic_admin_operations(conf, acls):
    admin = AdminClient(conf)
    # CREATE on the topic (or the cluster).
    name = fresh("adm")
    acls.add(binding(ResourceType.TOPIC, "adm-", AclOperation.DESCRIBE, principal=OTHER,
                     pattern=ResourcePatternType.PREFIXED))
    f = admin.create_topics([NewTopic(name, 1, 1)])[name]
    assert future_error(f) == TOPIC_DENIED
    acls.add(binding(ResourceType.TOPIC, "adm-", AclOperation.CREATE,
                     pattern=ResourcePatternType.PREFIXED))
    assert future_error(admin.create_topics([NewTopic(name, 1, 1)])[name]) is None
    # ALTER for partitions, DESCRIBE_CONFIGS / ALTER_CONFIGS for configs, DELETE for records
    # and for the topic; DESCRIBE (which librdkafka needs to find leaders) implies none of them.
    acls.add(binding(ResourceType.TOPIC, name, AclOperation.DESCRIBE))
    f = admin.create_partitions([NewPartitions(name, 2)])[name]
    assert future_error(f) == TOPIC_DENIED
    res = ConfigResource(ResourceType.TOPIC, name)
    assert future_error(admin.describe_configs([res])[res]) == TOPIC_DENIED
    alter = ConfigResource(ResourceType.TOPIC, name, set_config={"retention.ms": "3600000"})
    assert future_error(admin.alter_configs([alter])[alter]) == TOPIC_DENIED
    tp = TopicPartition(name, 0, 0)
    assert future_error(admin.delete_records([tp])[tp]) == TOPIC_DENIED
    assert future_error(admin.delete_topics([name])[name]) == TOPIC_DENIED
    acls.add(binding(ResourceType.TOPIC, name, AclOperation.ALTER),
             binding(ResourceType.TOPIC, name, AclOperation.ALTER_CONFIGS),
             binding(ResourceType.TOPIC, name, AclOperation.DELETE))
    assert future_error(admin.create_partitions([NewPartitions(name, 2)])[name]) is None
    # ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    assert future_error(admin.alter_configs([alter])[alter]) is None
    assert admin.describe_configs([res])[res].result(30)["retention.ms"].value == "3600000"
    assert future_error(admin.delete_records([tp])[tp]) is None
    assert future_error(admin.delete_topics([name])[name]) is None


def test_cluster_operations_need_cluster_acls(broker, conf, acls):
    admin = AdminClient(conf)
    broker_res = ConfigResource(ResourceType.BROKER, "1")
    # The cluster has ACLs (ANONYMOUS's ALTER): DESCRIBE_CONFIGS is not among them.
    assert future_error(admin.describe_configs([broker_res])[broker_res]) == CLUSTER_DENIED
    # Client quotas too (DescribeClientQuotas needs DESCRIBE_CONFIGS on the cluster).
    quotas = ("kafka-configs", "--bootstrap-server", broker.bootstrap, "--describe",
              "--entity-type", "clients")
    rc, out, err = kafka_tool(*quotas)
    assert rc != 0 and "ClusterAuthorizationException" in out + err, out + err
    grant = binding(ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS)
    acls.add(grant)
    assert future_error(admin.describe_configs([broker_res])[broker_res]) is None
    rc, out, err = kafka_tool(*quotas)
    assert rc == 0, out + err
    # DescribeAcls needs DESCRIBE on the cluster: a DENY takes it away (ALTER is kept).
    deny = binding(ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE,
                   permission=AclPermissionType.DENY)
    acls.add(deny)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # (librdkafka drops DescribeAcls' top-level error and answers an empty list: Apache Kafka's
    # kafka-acls shows the refusal.)
    assert admin.describe_acls(everything).result(30) == []
    rc, out, err = kafka_tool("kafka-acls", "--bootstrap-server", broker.bootstrap, "--list")
    assert rc != 0 and "ClusterAuthorizationException" in out + err, out + err
    acls.remove(deny)
    described = admin.describe_acls(everything).result(30)
    assert any(b.operation == AclOperation.DESCRIBE_CONFIGS for b in described)
    acls.remove(grant)


def test_transactional_id_needs_write(conf, acls):
    topic, tid = fresh("txn"), fresh("txn-id")
    make_topic(conf, topic)
    acls.add(binding(ResourceType.TRANSACTIONAL_ID, tid, AclOperation.WRITE, principal=OTHER))
    p = Producer({**conf, "transactional.id": tid, "transaction.timeout.ms": 20000})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(20)
    assert error_code(e.value) == TXN_DENIED
    acls.add(binding(ResourceType.TRANSACTIONAL_ID, "txn-id-", AclOperation.WRITE,
                     pattern=ResourcePatternType.PREFIXED))
    p = Producer({**conf, "transactional.id": tid, "transaction.timeout.ms": 20000})
    p.init_transactions(20)
    p.begin_transaction()
    p.produce(topic, value=b"t")
    p.commit_transaction(20)


def test_acls_survive_a_restart_and_super_users_pass_a_deny(broker, conf, acls):
    topic = fresh("su")
    make_topic(conf, topic)
    deny_all = binding(ResourceType.TOPIC, topic, AclOperation.ALL,
                       permission=AclPermissionType.DENY)
    acls.add(deny_all)
    assert produce_error(conf, topic) == TOPIC_DENIED
    broker.overrides["super.users"] = "User:admin;User:ANONYMOUS"
    broker.restart()
    try:
        # The ACL is still there (metadata log), and a super user is allowed anyway.
        everything = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                      None, None, AclOperation.ANY, AclPermissionType.ANY)
        admin = AdminClient(conf)
        kept = admin.describe_acls(everything).result(30)
        assert [(b.name, b.permission_type) for b in kept] == [(topic, AclPermissionType.DENY)]
        assert produce_error(conf, topic) is None
    finally:
        del broker.overrides["super.users"]
        broker.restart()
    assert produce_error(conf, topic) == TOPIC_DENIED


def test_without_an_authorizer_acl_apis_are_security_disabled(tmp_path):
    b = Broker(tmp_path, {}).start()
    try:
        rc, out, err = kafka_tool("kafka-acls", "--bootstrap-server", b.bootstrap, "--list")
        assert rc != 0 or "SecurityDisabledException" in out + err
        assert "No Authorizer is configured" in out + err
    finally:
        b.kill9()


def test_a_cluster_enforces_the_same_acls_on_every_node(tmp_path):
    # Brokers reach each other as User:ANONYMOUS (no inter-broker SASL yet): with no ACL on the
    # cluster they pass by allow.everyone.if.no.acl.found, and once the cluster has ACLs
    # ANONYMOUS needs CLUSTER_ACTION (follower fetches, Runnel's inter-node requests) like a
    # broker principal in Kafka. (A cluster without that setting needs super.users to list
    # User:ANONYMOUS.)
    cluster = Cluster(tmp_path, 3, settings={"authorizer.class.name": AUTHORIZER,
                                             "allow.everyone.if.no.acl.found": "true"})
    cluster.start_all()
    try:
        cluster.wait_formed(60)
        conf = {"bootstrap.servers": cluster.bootstrap}
        admin = AdminClient({"bootstrap.servers": cluster[0].bootstrap})
        acls = Acls(admin)
        acls.add(binding(ResourceType.BROKER, "kafka-cluster", AclOperation.CLUSTER_ACTION),
                 binding(ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER))
        topic = fresh("clu")
        for f in admin.create_topics([NewTopic(topic, 3, 3)]).values():
            f.result(30)
        acls.add(binding(ResourceType.TOPIC, topic, AclOperation.WRITE,
                         permission=AclPermissionType.DENY))
        # Every node lists the ACL and refuses the write, whichever leads the partitions.
        everything = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None,
                                      None, AclOperation.ANY, AclPermissionType.ANY)
        for i in range(3):
            node_admin = AdminClient({"bootstrap.servers": cluster[i].bootstrap})
            deadline = time.time() + 20
            while len(node_admin.describe_acls(everything).result(30)) != 1:
                assert time.time() < deadline, f"node {i + 1} does not list the ACL"
                time.sleep(0.2)
        for part in range(3):
            errors = []
            p = Producer({**conf, "message.timeout.ms": 15000})
            p.produce(topic, value=b"x", partition=part, on_delivery=lambda e, m: errors.append(e))
            p.flush(30)
            assert errors[0] is not None and errors[0].code() == TOPIC_DENIED
        acls.remove(binding(ResourceType.TOPIC, topic, AclOperation.WRITE,
                            permission=AclPermissionType.DENY))
        # Every node follows the removal (the metadata log reaches them within moments), and
        # replication (CLUSTER_ACTION) goes on: acks=all writes complete on RF 3.
        deadline = time.time() + 20
        while produce_error(conf, topic, acks="all") is not None:
            assert time.time() < deadline, "the removed DENY is still enforced"
            time.sleep(0.5)
    finally:
        cluster.kill_all()


PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-pw" user_admin="admin-pw" user_alice="alice-pw";')


def test_sasl_plain_users_with_default_deny(tmp_path):
    # Real principals: User:admin (a super user) manages ACLs, User:alice has only what it grants;
    # allow.everyone.if.no.acl.found stays false (Kafka's default), so no ACL means refused.
    port = free_port()
    b = Broker(tmp_path, {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
        "offsets.topic.num.partitions": "2",
    }).start()
    try:
        def conf(user):
            return {"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN", "sasl.username": user,
                    "sasl.password": f"{user}-pw"}
        admin, alice = conf("admin"), conf("alice")
        topic = fresh("sa")
        make_topic(admin, topic)
        assert produce_error(alice, topic) == TOPIC_DENIED
        acls = Acls(AdminClient(admin))
        grant = binding(ResourceType.TOPIC, "sa-", AclOperation.WRITE, principal="User:alice",
                        pattern=ResourcePatternType.PREFIXED)
        acls.add(grant)
        assert produce_error(alice, topic) is None
        deny = binding(ResourceType.TOPIC, topic, AclOperation.WRITE, principal="User:alice",
                       permission=AclPermissionType.DENY)
        acls.add(deny)
        assert produce_error(alice, topic) == TOPIC_DENIED
        # The super user still writes; alice may not manage ACLs (ALTER on the cluster).
        assert produce_error(admin, topic) is None
        alice_admin = AdminClient(alice)
        f = alice_admin.create_acls([binding(ResourceType.TOPIC, "x", AclOperation.READ,
                                             principal="User:alice")])
        assert [future_error(x) for x in f.values()] == [CLUSTER_DENIED]
        # kafka-acls with --command-config: admin lists, alice is refused.
        cfg = tmp_path / "admin.properties"
        cfg.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                       "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
                       'required username="admin" password="admin-pw";\n')
        rc, out, err = kafka_tool("kafka-acls", "--bootstrap-server", b.bootstrap,
                                  "--command-config", str(cfg), "--list", "--principal",
                                  "User:alice")
        assert rc == 0 and f"name={topic}, patternType=LITERAL" in out and "DENY" in out, out + err
        cfg.write_text(cfg.read_text().replace('"admin"', '"alice"').replace("admin-pw", "alice-pw"))
        rc, out, err = kafka_tool("kafka-acls", "--bootstrap-server", b.bootstrap,
                                  "--command-config", str(cfg), "--list")
        assert rc != 0 and "ClusterAuthorizationException" in out + err, out + err
    finally:
        b.kill9()
