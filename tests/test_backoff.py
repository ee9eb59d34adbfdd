"""The backoff helper: doubling from ``base``, the cap, jitter bounds, attempts 0 and 1."""

from __future__ import annotations

import math
import random

import pytest

from bridge.backoff import Backoff


def test_first_failure_waits_base_and_each_next_one_doubles() -> None:
    backoff = Backoff(base=0.5, cap=100.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_attempt_zero_waits_like_the_first_failure() -> None:
    assert Backoff(base=3.0).delay(0) == Backoff(base=3.0).delay(1) == 3.0
    assert Backoff(base=3.0).delay(-2) == 3.0


def test_waits_never_pass_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=5.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(base=1.0, cap=60.0).delay(100_000) == 60.0
    assert Backoff(base=1.0).delay(100_000) == math.inf
    assert Backoff(base=0.0).delay(100_000) == 0.0


def test_other_factors() -> None:
    assert [Backoff(base=1.0, factor=3.0).delay(n) for n in (1, 2, 3)] == [1.0, 3.0, 9.0]
    assert [Backoff(base=2.0, factor=1.0).delay(n) for n in (1, 5)] == [2.0, 2.0]


def test_no_jitter_draws_nothing() -> None:
    rng = random.Random(7)
    state = rng.getstate()
    Backoff(base=1.0).delay(3, rng)
    assert rng.getstate() == state


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_jitter_stays_within_its_range(attempt: int) -> None:
    backoff = Backoff(base=2.0, cap=10.0, jitter=(0.8, 1.2))
    rng = random.Random(attempt)
    plain = Backoff(base=2.0, cap=10.0).delay(attempt)
    waits = [backoff.delay(attempt, rng) for _ in range(200)]
    assert all(0.8 * plain <= w <= 1.2 * plain for w in waits)
    assert min(waits) < plain < max(waits)


def test_jitter_comes_from_the_given_generator() -> None:
    backoff = Backoff(base=4.0, jitter=(0.5, 1.0))
    expected = 8.0 * random.Random(42).uniform(0.5, 1.0)
    assert backoff.delay(2, random.Random(42)) == expected


def test_jitter_without_a_generator_uses_the_random_module() -> None:
    random.seed(5)
    expected = 4.0 * random.uniform(0.8, 1.2)
    random.seed(5)
    assert Backoff(base=4.0, jitter=(0.8, 1.2)).delay(1) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"base": -1.0},
        {"base": 1.0, "cap": -1.0},
        {"base": 1.0, "factor": 0.5},
        {"base": 1.0, "jitter": (1.2, 0.8)},
        {"base": 1.0, "jitter": (-0.1, 1.0)},
    ],
)
def test_nonsense_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a valid backoff"):
        Backoff(**bad)  # type: ignore[arg-type]


async def test_sleep_waits_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("bridge.backoff.asyncio.sleep", fake_sleep)
    backoff = Backoff(base=0.25, cap=1.0)
    for attempt in (1, 2, 3, 4):
        await backoff.sleep(attempt)
    assert slept == [0.25, 0.5, 1.0, 1.0]
