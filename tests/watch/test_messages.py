"""The push channel's message shapes: client ops parsed strictly, releases encoded once."""

from __future__ import annotations

import orjson
import pytest

from server.domain.canonical import checksum
from server.errors import AppError, ErrorCode
from server.published import PublishedConfigs
from server.records import Release, utc_now
from server.watch.hub import Hub
from server.watch.messages import (
    Ack,
    ReleaseMessage,
    ReleaseMessages,
    Subscribe,
    Unsubscribe,
    error_message,
    parse_op,
    subscribe_from_query,
    text_frame,
)


def release(app: str, env: str, version: int, **items: str) -> Release:
    """A release as the store would have committed it."""
    values = items or {"v": str(version)}
    return Release(app, env, version, checksum(values), "test", "", utc_now(), values)


INVALID = ErrorCode.INVALID_REQUEST


def refused(raw: str) -> ErrorCode:
    """The code parse_op refuses raw with."""
    with pytest.raises(AppError) as caught:
        parse_op(raw)
    return caught.value.error


def test_ops_are_parsed_into_their_models() -> None:
    assert parse_op('{"op":"subscribe","app":"a","env":"e"}') == Subscribe(
        op="subscribe", app="a", env="e"
    )
    assert parse_op('{"op":"subscribe","app":"a","env":"e","after":5}') == Subscribe(
        op="subscribe", app="a", env="e", after=5
    )
    assert parse_op('{"op":"unsubscribe","app":"a","env":"e"}') == Unsubscribe(
        op="unsubscribe", app="a", env="e"
    )
    assert parse_op('{"op":"ack","app":"a","env":"e","version":3}') == Ack(
        op="ack", app="a", env="e", version=3
    )
    labels = {f"k{n}": "v é:=" for n in range(16)}
    raw = orjson.dumps(
        {
            "op": "subscribe",
            "app": "a",
            "env": "e",
            "instance": "host-1:80@pod/a_b.c",
            "labels": labels,
        }
    ).decode()
    assert parse_op(raw) == Subscribe(
        op="subscribe", app="a", env="e", instance="host-1:80@pod/a_b.c", labels=labels
    )


def test_at_most_sixteen_labels() -> None:
    labels = {f"k{n}": "v" for n in range(17)}
    raw = orjson.dumps(
        {"op": "subscribe", "app": "a", "env": "e", "instance": "i", "labels": labels}
    )
    assert refused(raw.decode()) is INVALID


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("nope", ErrorCode.INVALID_JSON),
        ("[]", ErrorCode.INVALID_JSON),
        ("null", ErrorCode.INVALID_JSON),
        ('{"app":"a","env":"e"}', ErrorCode.INVALID_OP),
        ('{"op":"ping","app":"a","env":"e"}', ErrorCode.INVALID_OP),
        ('{"op":"ack","app":"a","env":"e"}', INVALID),
        ('{"op":"ack","app":"a","env":"e","version":0}', INVALID),
        ('{"op":"ack","app":"a","env":"e","version":"3"}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"has space"}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":""}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"' + "i" * 129 + '"}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":7}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"i","labels":{"Team":"a"}}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"i","labels":{"t":""}}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"i","labels":{"t":"a\\nb"}}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"i","labels":{"t":1}}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","instance":"i","labels":["t"]}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","labels":{"t":"a"}}', INVALID),
        ('{"op":["subscribe"],"app":"a","env":"e"}', ErrorCode.INVALID_OP),
        ('{"op":"subscribe","app":"a","env":"e","after":"5"}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","after":false}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","after":5.0}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","after":-1}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","after":4611686018427387905}', INVALID),
        ('{"op":"subscribe","app":"a"}', INVALID),
        ('{"op":"subscribe","app":"a","env":"e","extra":1}', INVALID),
        ('{"op":"unsubscribe","app":"a","env":"e","after":1}', INVALID),
        ('{"op":"unsubscribe","app":"a","env":null}', INVALID),
    ],
)
def test_anything_but_a_well_formed_op_is_refused_with_its_code(raw: str, code: ErrorCode) -> None:
    assert refused(raw) is code


def test_the_refusal_names_the_field() -> None:
    with pytest.raises(AppError) as caught:
        parse_op('{"op":"subscribe","app":"a","env":"e","colour":"red"}')
    assert caught.value.message == "unknown field 'colour'"
    with pytest.raises(AppError) as caught:
        parse_op('{"op":"subscribe","app":"a"}')
    assert caught.value.message == "missing field 'env'"


def test_a_query_subscription_reads_after_as_ascii_digits_only() -> None:
    assert subscribe_from_query({"token": "t"}) is None
    assert subscribe_from_query({"app": "a", "env": "e", "after": "007"}) == Subscribe(
        op="subscribe", app="a", env="e", after=7
    )
    for after in ("5x", "-1", "²", "", " 5"):
        with pytest.raises(AppError) as caught:
            subscribe_from_query({"app": "a", "env": "e", "after": after})
        assert caught.value.error is ErrorCode.INVALID_REQUEST, after
    with pytest.raises(AppError):
        subscribe_from_query({"app": "a"})


def test_a_query_subscription_names_its_instance_and_labels() -> None:
    query = {"app": "a", "env": "e", "instance": "pod-1", "labels": "zone:eu-1, team=pay"}
    assert subscribe_from_query(query) == Subscribe(
        op="subscribe", app="a", env="e", instance="pod-1", labels={"zone": "eu-1", "team": "pay"}
    )
    for labels in ("zone", "Zone:eu", "zone:eu,zone:us", ":eu", "zone:"):
        with pytest.raises(AppError) as caught:
            subscribe_from_query({**query, "labels": labels})
        assert caught.value.error is ErrorCode.INVALID_REQUEST, labels
    with pytest.raises(AppError):
        subscribe_from_query({**query, "instance": "pod 1"})


def test_a_release_message_is_the_contract_shape_as_text_and_as_one_whole_frame() -> None:
    message = ReleaseMessage.of(release("shop", "prod", 3, a="1"), reveal=True)
    assert orjson.loads(message.text) == {
        "type": "release",
        "app": "shop",
        "env": "prod",
        "version": 3,
        "checksum": checksum({"a": "1"}),
        "items": {"a": "1"},
        "gray": False,
    }
    assert message.version == 3
    assert message.wire == text_frame(message.text.encode())


def test_frames_carry_their_length_in_the_form_rfc_6455_gives_each_size() -> None:
    assert text_frame(b"x" * 125)[:2] == b"\x81\x7d"
    assert text_frame(b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame(b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


def test_a_release_is_encoded_once_until_its_env_moves_on() -> None:
    messages = ReleaseMessages()
    first = release("shop", "prod", 1)
    assert messages.of(first) is messages.of(first)
    second = release("shop", "prod", 2)
    assert messages.of(second) is not messages.of(first)
    assert messages.of(second).version == 2


def test_the_hub_drops_a_message_nobody_is_subscribed_to() -> None:
    published = PublishedConfigs()
    hub = Hub(published, max_subscriptions=10)
    kept = release("shop", "prod", 1)
    published.apply(kept)
    built = hub.messages.of(kept)
    assert hub.messages.of(kept) is built
    published.apply(release("shop", "prod", 2))  # no subscribers: nothing kept for v1 or v2
    assert hub.messages.of(kept) is not built
    gone = hub.messages.of(release("gone", "prod", 1))
    published.remove_app("gone")
    assert hub.messages.of(gone.release) is not gone


def test_an_error_message_is_the_contract_shape() -> None:
    assert orjson.loads(error_message(ErrorCode.NOT_FOUND, "env 'x' not found")) == {
        "type": "error",
        "code": "not_found",
        "message": "env 'x' not found",
    }
