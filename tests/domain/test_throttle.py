"""The sign-in throttling policy, as pure functions of the previous state and the time."""

from __future__ import annotations

import pytest

from server.domain.throttle import (
    FIRST_LOCK_SECONDS,
    FREE_FAILURES_PER_NAME,
    MAX_LOCK_SECONDS,
    after_address_failure,
    after_name_failure,
    refuse_if_locked,
)
from server.errors import AppError
from server.records import Attempts


def test_a_name_is_locked_after_five_failures_for_30_s_doubling_up_to_15_min() -> None:
    state: Attempts | None = None
    locks = []
    for _ in range(FREE_FAILURES_PER_NAME + 8):
        state = after_name_failure(state, 1000.0)
        locks.append(state.locked_until - 1000.0 if state.locked_until else 0.0)
    assert locks[: FREE_FAILURES_PER_NAME - 1] == [0.0] * (FREE_FAILURES_PER_NAME - 1)
    assert locks[FREE_FAILURES_PER_NAME - 1 :] == [
        30.0,
        60.0,
        120.0,
        240.0,
        480.0,
        900.0,
        900.0,
        900.0,
        900.0,
    ]
    assert FIRST_LOCK_SECONDS == 30.0
    assert MAX_LOCK_SECONDS == 900.0


def test_an_address_gets_its_limit_of_failures_a_minute_then_waits_for_the_next_minute() -> None:
    state: Attempts | None = None
    for second in range(29):
        state = after_address_failure(state, 100.0 + second, limit=30)
        assert state.locked_until == 0.0
    state = after_address_failure(state, 130.0, limit=30)
    assert state.failures == 30
    assert state.locked_until == 160.0
    fresh = after_address_failure(state, 160.0, limit=30)
    assert (fresh.failures, fresh.window_start, fresh.locked_until) == (1, 160.0, 0.0)


def test_a_locked_subject_is_refused_with_the_seconds_left() -> None:
    refuse_if_locked([None, Attempts(3, 0.0, 0.0)], now=50.0)
    with pytest.raises(AppError) as refused:
        refuse_if_locked([Attempts(6, 0.0, 80.5), Attempts(1, 0.0, 60.0)], now=50.0)
    assert refused.value.status == 429
    assert refused.value.code == "too_many_attempts"
    assert refused.value.retry_after == 31
