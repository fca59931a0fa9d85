"""Fixtures: `broker` is a fresh `runnel serve` process; `broker_factory(**overrides)` starts one
with extra settings (pass Kafka keys with dots through a dict: broker_factory(**{"num.partitions": "3"}))."""

import pytest

from helpers import Broker


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
