"""Fixtures: `broker` is a fresh `runnel serve` process; `broker_factory(**overrides)` starts one
with extra settings (pass Kafka keys with dots through a dict: broker_factory(**{"num.partitions": "3"})).
`cluster` is a formed three-node cluster with short liveness timings; `cluster_factory(n, **settings)`
starts others."""

import pytest

from helpers import Broker, Cluster


@pytest.fixture
def broker_factory(tmp_path):
    started = []

    def make(**overrides):
        b = Broker(tmp_path / f"b{len(started)}", {k: str(v) for k, v in overrides.items()})
        (tmp_path / f"b{len(started)}").mkdir()
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.kill9()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


# Short liveness timings so that fencing, ISR shrink and re-election happen within seconds.
FAST_CLUSTER = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
}


@pytest.fixture
def cluster_factory(tmp_path):
    """cluster_factory(n=3, **settings) starts a Cluster (nodes started together) and tears it down."""
    made = []

    def make(n=3, node_settings=None, wait_formed=True, **settings):
        c = Cluster(tmp_path / f"cluster{len(made)}", n=n, settings={**FAST_CLUSTER, **settings},
                    node_settings=node_settings)
        made.append(c)
        c.start_all()
        return c.wait_formed() if wait_formed else c

    yield make
    for c in made:
        for i, node in enumerate(c.nodes):
            if node.paused:
                c.resume(i)
        c.kill_all()
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory()
