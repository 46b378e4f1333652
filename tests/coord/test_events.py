"""Cluster events: the one table of their etcd records, handlers by type, unknown kinds ignored."""

from __future__ import annotations

import logging
import typing

import aetcd
import orjson
import pytest

from server.coord.etcd_keys import EVENT_KINDS, UnknownEvent, decode_event, encode_event
from server.events import EVENT_TYPES, ClusterEvent, EventHandlers, TokenRevoked, UserChanged
from tests.coord.helpers import NodeFactory
from tests.coord.test_coordinator import EVENT_SAMPLES, until


def test_every_event_type_has_a_wire_name_and_a_sample() -> None:
    assert set(EVENT_KINDS.values()) == set(EVENT_TYPES) == set(typing.get_args(ClusterEvent))
    assert {type(event) for event in EVENT_SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", EVENT_SAMPLES, ids=lambda e: type(e).__name__)
def test_each_event_survives_its_record(event: ClusterEvent) -> None:
    assert decode_event(encode_event(event, "r1")) == (event, "r1")


def test_records_keep_the_format_older_replicas_write() -> None:
    records: dict[bytes, ClusterEvent] = {
        b'{"kind":"token_revoked","data":{"id":7},"origin":"r1"}': TokenRevoked(7),
        b'{"kind":"user_changed","data":{"name":"ann"},"origin":"r1"}': UserChanged("ann"),
    }
    for record, event in records.items():
        assert decode_event(record) == (event, "r1")
        assert orjson.loads(encode_event(event, "r1")) == orjson.loads(record)


def test_a_newer_field_is_ignored_and_a_wrong_one_refused() -> None:
    newer = b'{"kind":"token_revoked","data":{"id":7,"reason":"x"},"origin":"r1"}'
    assert decode_event(newer) == (TokenRevoked(7), "r1")
    for bad in (
        b'{"kind":"token_revoked","data":{"id":"7"},"origin":"r1"}',
        b'{"kind":"token_revoked","data":{"id":true},"origin":"r1"}',
        b'{"kind":"token_revoked","data":{},"origin":"r1"}',
        b'{"kind":"token_revoked","data":[],"origin":"r1"}',
        b'{"data":{"id":7},"origin":"r1"}',
        b"not json",
    ):
        with pytest.raises(ValueError, match="not an event record"):
            decode_event(bad)


def test_an_unknown_kind_is_its_own_error() -> None:
    with pytest.raises(UnknownEvent, match="app_renamed"):
        decode_event(b'{"kind":"app_renamed","data":{"app":"a"},"origin":"r9"}')


def test_handlers_run_by_type_and_a_failing_one_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handlers = EventHandlers()
    seen: list[str] = []

    def broken(event: TokenRevoked) -> None:
        raise RuntimeError("broken handler")

    handlers.add(TokenRevoked, broken)
    handlers.add(TokenRevoked, lambda event: seen.append(f"revoked {event.id}"))
    handlers.add(UserChanged, lambda event: seen.append(f"user {event.name}"))
    handlers.dispatch(TokenRevoked(3))
    handlers.dispatch(UserChanged("ann"))
    assert seen == ["revoked 3", "user ann"]
    failures = [r.exc_info[1] for r in caplog.records if r.exc_info is not None]
    assert [str(exc) for exc in failures] == ["broken handler"]


@pytest.mark.etcd
async def test_an_unknown_kind_from_etcd_is_logged_and_ignored(
    node_factory: NodeFactory, raw_etcd: aetcd.Client, caplog: pytest.LogCaptureFixture
) -> None:
    a = await node_factory("etcd")
    caplog.set_level(logging.WARNING, logger="server.coord.etcd_sync")
    newer = orjson.dumps({"kind": "app_renamed", "data": {"app": "a"}, "origin": "newer-replica"})
    await raw_etcd.put(a.etcd.keys.event("newer-replica", "1"), newer)
    await raw_etcd.put(
        a.etcd.keys.event("older-replica", "2"), encode_event(TokenRevoked(5), "older-replica")
    )
    await until(lambda: a.events == [TokenRevoked(5)], what="the known event")
    assert any("app_renamed" in r.getMessage() for r in caplog.records)
    assert a.etcd.sync.watching
