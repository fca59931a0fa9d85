"""Inter-broker and controller traffic over TLS (issue 14): three combined nodes whose
inter.broker.listener.name is an SSL listener and whose CONTROLLER listener is SSL too, both with
ssl.client.auth=required (the nodes present their own certificates to each other). The quorum
forms, an RF 3 topic written with acks=all through the SSL listener is replicated to every node
(all in the ISR), a transaction commits (markers sent between brokers over TLS), and the nodes'
logs show their peers connecting over TLS with their certificate's principal. A node restarted
rejoins over TLS. About 30 s."""

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import FAST_CLUSTER
from helpers import Cluster, free_ports, make_tls_certs, poll_values, wait_full_isr


def test_inter_broker_and_controller_traffic_over_tls(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNEL_LOG", "info,runnel_broker::server=debug")
    certs = make_tls_certs(tmp_path / "certs", clients=("app",))
    settings = {
        **FAST_CLUSTER,
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "server.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.crt"),
        "ssl.client.auth": "required",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
    }
    c = Cluster(tmp_path / "cluster", n=3, settings=settings)
    ssl_ports = free_ports(3)
    for node, port in zip(c.nodes, ssl_ports):
        node.settings["listeners"] = (f"PLAINTEXT://127.0.0.1:{node.port},SSL://127.0.0.1:{port},"
                                      f"CONTROLLER://127.0.0.1:{node.controller_port}")
    try:
        c.start_all()
        c.wait_formed(timeout=60)
        ssl_bootstrap = ",".join(f"127.0.0.1:{p}" for p in ssl_ports)
        conf = {"bootstrap.servers": ssl_bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": str(certs / "ca.crt"),
                "ssl.certificate.location": str(certs / "app.crt"),
                "ssl.key.location": str(certs / "app.key")}
        admin = AdminClient(conf)
        for f in admin.create_topics([NewTopic("tls-rf3", 3, 3, config={"min.insync.replicas": "2"})]).values():
            f.result(20)
        p = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        for i in range(600):
            p.produce("tls-rf3", key=b"k%d" % i, value=b"v%d" % i)
        assert p.flush(30) == 0
        # Every replica caught up: all three in the ISR of each partition, and the high
        # watermarks (which need the followers' fetches over TLS) cover every record.
        isrs, _ = wait_full_isr(admin, "tls-rf3", timeout=30)
        assert all(i == [1, 2, 3] for i in isrs.values()), isrs
        cons = Consumer({**conf, "group.id": "g-tls", "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
        cons.assign([TopicPartition("tls-rf3", part, 0) for part in range(3)])
        got = poll_values(cons, 600)
        assert got == {b"v%d" % i for i in range(600)}
        # A transaction: its markers go from the coordinator to the leaders over TLS.
        tp = Producer({**conf, "transactional.id": "tls-tx", "acks": "all"})
        tp.init_transactions(30)
        tp.begin_transaction()
        for i in range(30):
            tp.produce("tls-rf3", key=b"t", value=b"tx%d" % i, partition=i % 3)
        tp.commit_transaction(30)
        seen = poll_values(cons, 30, prefix=b"tx")
        assert seen == {b"tx%d" % i for i in range(30)}
        cons.close()
        # The nodes reached each other over TLS, as the server certificate's principal (its
        # subject /CN=localhost/O=runnel in RFC 2253 order), on the
        # SSL (replication) and CONTROLLER (raft) listeners.
        for node in c.nodes:
            log = node.log_text()
            for listener in ("SSL", "CONTROLLER"):
                assert any("TLS connection" in line and f"listener={listener}" in line
                           and "principal=User:O=runnel,CN=localhost" in line
                           for line in log.splitlines()), (node.node_id, listener)
        # A node restarted rejoins the quorum and the ISR over TLS.
        c.stop(2)
        c.start(2)
        c.wait_formed(timeout=60)
        isrs, _ = wait_full_isr(admin, "tls-rf3", timeout=40)
        assert all(i == [1, 2, 3] for i in isrs.values()), isrs
    finally:
        c.kill_all()
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")
