"""Retry delays: bounded, growing with the attempt, and jittered."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from policyc.meshnode.agent import BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS, backoff_delay


@given(st.integers(min_value=0, max_value=10_000), st.integers())
def test_delays_stay_within_the_cap(attempt: int, seed: int) -> None:
    delay = backoff_delay(attempt, random.Random(seed))
    assert 0.05 <= delay <= max(0.05, min(BACKOFF_MAX_SECONDS,
                                          BACKOFF_FIRST_SECONDS * 2 ** min(attempt, 16)))


def test_delays_are_jittered_so_nodes_do_not_retry_in_lockstep() -> None:
    rng = random.Random(1)
    delays = {round(backoff_delay(6, rng), 6) for _ in range(50)}
    assert len(delays) > 40
    assert max(delays) > BACKOFF_MAX_SECONDS / 2
