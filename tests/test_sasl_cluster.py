"""Inter-broker and controller traffic over SASL (issue 14): three combined nodes whose
inter-broker listener INTERNAL and CONTROLLER listener are SASL_PLAINTEXT ones, with PLAIN
(sasl.mechanism.inter.broker.protocol / sasl.mechanism.controller.protocol) and the nodes' own
credentials in the listeners' JAAS entries, the StandardAuthorizer on with default deny and only
the nodes' users as super users. The quorum forms over SASL (raft, forwarded requests, hellos); an
RF 3 topic written with acks=all by a user holding only topic ACLs is replicated to every node
(the followers' fetches authenticate); a transaction commits (markers sent between brokers over
SASL). A node restarted with a wrong inter-broker password stays out of the ISR, with failed
authentications logged on both sides, while records keep coming; with the right one it rejoins.
About 60 s."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

from conftest import FAST_CLUSTER
from helpers import Cluster, free_ports, poll_values, wait_full_isr

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule required"


def jaas(user, password):
    users = 'user_broker="broker-secret" user_controller="controller-secret" user_alice="alice-secret"'
    return f'{PLAIN} username="{user}" password="{password}" {users};'


def sasl_conf(bootstrap, user, password):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": password}


def test_inter_broker_and_controller_traffic_over_sasl(tmp_path):
    settings = {
        **FAST_CLUSTER,
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "INTERNAL",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.internal.plain.sasl.jaas.config": jaas("broker", "broker-secret"),
        "listener.name.controller.plain.sasl.jaas.config": jaas("controller", "controller-secret"),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:broker;User:controller",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
    }
    c = Cluster(tmp_path / "cluster", n=3, settings=settings)
    sasl_ports = free_ports(3)
    for node, port in zip(c.nodes, sasl_ports):
        node.settings["listeners"] = (f"PLAINTEXT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{port},"
                                      f"CONTROLLER://127.0.0.1:{node.controller_port}")
    try:
        c.start_all()
        c.wait_formed(timeout=60)
        bootstrap = ",".join(f"127.0.0.1:{p}" for p in sasl_ports)
        admin = AdminClient(sasl_conf(bootstrap, "broker", "broker-secret"))
        for f in admin.create_topics([NewTopic("sasl-rf3", 3, 3, config={"min.insync.replicas": "2"})]).values():
            f.result(20)
        # alice may only write, read and describe the topic and read her group.
        acls = [AclBinding(ResourceType.TOPIC, "sasl-rf3", ResourcePatternType.LITERAL, "User:alice", "*",
                           op, AclPermissionType.ALLOW)
                for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)]
        acls.append(AclBinding(ResourceType.GROUP, "g-sasl", ResourcePatternType.LITERAL, "User:alice", "*",
                               AclOperation.READ, AclPermissionType.ALLOW))
        for f in admin.create_acls(acls).values():
            f.result(20)
        alice = sasl_conf(bootstrap, "alice", "alice-secret")
        time.sleep(1)
        p = Producer({**alice, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        for i in range(600):
            p.produce("sasl-rf3", key=b"k%d" % i, value=b"v%d" % i)
        assert p.flush(30) == 0
        # Every replica caught up: the followers fetched over the SASL listener.
        got, _ = wait_full_isr(admin, "sasl-rf3")
        assert all(i == [1, 2, 3] for i in got.values()), got
        cons = Consumer({**alice, "group.id": "g-sasl", "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
        cons.assign([TopicPartition("sasl-rf3", part, 0) for part in range(3)])
        values = poll_values(cons, 600)
        assert values == {b"v%d" % i for i in range(600)}
        # A transaction (as a super user): its markers go from the coordinator to the leaders
        # over the SASL listener.
        tp = Producer({**sasl_conf(bootstrap, "broker", "broker-secret"), "transactional.id": "sasl-tx",
                       "acks": "all"})
        tp.init_transactions(30)
        tp.begin_transaction()
        for i in range(30):
            tp.produce("sasl-rf3", key=b"t", value=b"tx%d" % i, partition=i % 3)
        tp.commit_transaction(30)
        seen = poll_values(cons, 30, prefix=b"tx")
        assert seen == {b"tx%d" % i for i in range(30)}
        cons.close()

        # Node 3 with a wrong inter-broker password: its follower fetches are refused, so it
        # stays out of the ISR of the partitions others lead; both sides log why.
        c.stop(2)
        c.nodes[2].settings["listener.name.internal.plain.sasl.jaas.config"] = jaas("broker", "wrong")
        c.start(2)
        # New records that node 3 cannot fetch: the leaders drop it after replica.lag.time.max.ms.
        deadline = time.time() + 40
        while True:
            for i in range(50):
                p.produce("sasl-rf3", key=b"late", value=b"late")
            assert p.flush(30) == 0
            got, leaders = wait_full_isr(admin, "sasl-rf3", timeout=0)
            led_by_others = [part for part, leader in leaders.items() if leader != 3]
            if (led_by_others and all(3 not in got[part] for part in led_by_others)) \
                    or time.time() > deadline:
                break
            time.sleep(1)
        assert led_by_others and all(3 not in got[part] for part in led_by_others), (got, leaders)
        def refusals_logged():
            fetcher = any("WARN" in line and "replica fetcher" in line and
                          ("authentication to another node failed" in line or "cannot connect" in line)
                          for line in c.nodes[2].log_text().splitlines())
            return fetcher and any("failed SASL authentication" in n.log_text() for n in c.nodes[:2])

        deadline = time.time() + 20
        while not refusals_logged() and time.time() < deadline:
            time.sleep(0.5)
        assert refusals_logged(), c.nodes[2].log_text()[-3000:]
        # The right password: it catches up and rejoins every ISR.
        c.stop(2)
        c.nodes[2].settings["listener.name.internal.plain.sasl.jaas.config"] = jaas("broker", "broker-secret")
        c.start(2)
        got, _ = wait_full_isr(admin, "sasl-rf3", timeout=60)
        assert all(i == [1, 2, 3] for i in got.values()), got
    finally:
        c.kill_all()
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")


def test_a_sasl_inter_broker_listener_without_credentials_is_refused_at_start(tmp_path):
    c = Cluster(tmp_path / "cluster", n=3, settings={
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": f'{PLAIN} user_controller="s";',
    })
    node = c.nodes[0]
    node.spawn()
    rc = node.proc.wait(30)
    log = node.log_text()
    assert rc != 0
    assert "sasl.mechanism.controller.protocol=GSSAPI" in log, log[-2000:]
    node.settings["sasl.mechanism.controller.protocol"] = "PLAIN"
    node.spawn()
    rc = node.proc.wait(30)
    log = node.log_text()
    assert rc != 0
    assert "listener.name.controller.plain.sasl.jaas.config" in log and "username and password" in log, log[-2000:]
