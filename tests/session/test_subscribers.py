"""The one delivery rule of both Session clients: every subscriber gets the event, a failure
is retried with backoff for everyone, then the event is dropped; crashes are logged with their
traceback. A subscriber that says "retry later" (what it needs is unreachable) gets the event
again for as long as it takes, never counted toward dropping it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bridge.session.subscribers import RetryLater, SubscriberList


def make(max_attempts: int = 3, *, wait: bool = False) -> SubscriberList[str]:
    return SubscriberList(
        "test",
        lambda e: f"event {e}",
        max_attempts=max_attempts,
        retry_delay=0.001,
        wait_for_taker=wait,
    )


async def test_every_subscriber_gets_the_event_once() -> None:
    subscribers, seen = make(), []

    async def first(event: str) -> bool:
        seen.append(("first", event))
        return True

    async def second(event: str) -> bool:
        seen.append(("second", event))
        return True

    subscribers.add(first)
    subscribers.add(second)
    await subscribers.deliver("a")
    assert seen == [("first", "a"), ("second", "a")]


async def test_a_failure_is_retried_for_everyone_and_does_not_stop_the_others() -> None:
    subscribers, calls = make(), {"flaky": 0, "steady": 0}

    async def flaky(event: str) -> bool:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("briefly down")
        return True

    async def steady(event: str) -> bool:
        calls["steady"] += 1
        return True

    subscribers.add(flaky)
    subscribers.add(steady)
    await subscribers.deliver("a")
    assert calls == {"flaky": 2, "steady": 2}


async def test_a_poison_event_is_dropped_after_max_attempts_with_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscribers, calls = make(max_attempts=3), []

    async def broken(event: str) -> bool:
        calls.append(event)
        raise ValueError("bug")

    subscribers.add(broken)
    with caplog.at_level(logging.ERROR, logger="bridge.session.subscribers"):
        await subscribers.deliver("p")
    assert calls == ["p", "p", "p"]
    crashes = [r for r in caplog.records if "subscriber failed on event p" in r.getMessage()]
    assert len(crashes) == 3 and all(r.exc_info for r in crashes)
    assert any("dropping event p after 3 attempts" in r.getMessage() for r in caplog.records)


async def test_retries_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("bridge.backoff.asyncio.sleep", fake_sleep)
    subscribers: SubscriberList[str] = SubscriberList("test", str, max_attempts=4, retry_delay=1.0)

    async def broken(event: str) -> bool:
        raise RuntimeError("down")

    subscribers.add(broken)
    await subscribers.deliver("x")
    assert slept == [1.0, 2.0, 4.0]


async def test_without_waiting_an_event_nobody_takes_is_passed_over() -> None:
    await asyncio.wait_for(make().deliver("a"), 1)


async def test_waiting_holds_the_event_until_a_subscriber_takes_it() -> None:
    subscribers, seen = make(wait=True), []

    async def closing(event: str) -> bool:  # like a stream closed while the event waited
        remove()
        return False

    async def takes(event: str) -> bool:
        seen.append(event)
        return True

    remove = subscribers.add(closing)
    delivery = asyncio.create_task(subscribers.deliver("a"))
    await asyncio.sleep(0.01)
    assert not delivery.done()
    subscribers.add(takes)
    await asyncio.wait_for(delivery, 1)
    assert seen == ["a"]


async def test_removing_twice_is_harmless() -> None:
    subscribers = make()

    async def one(event: str) -> bool:
        return True

    remove = subscribers.add(one)
    remove()
    remove()
    await subscribers.deliver("a")


async def test_retry_later_is_retried_beyond_max_attempts_and_never_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The homeserver is away for longer than max_attempts rounds: the event waits, and is
    # delivered (so acknowledged) only once the subscriber took it.
    subscribers, calls = make(max_attempts=3), []

    async def waits(event: str) -> bool:
        calls.append(event)
        if len(calls) <= 10:
            raise RetryLater("homeserver unreachable")
        return True

    subscribers.add(waits)
    with caplog.at_level(logging.WARNING, logger="bridge.session.subscribers"):
        await asyncio.wait_for(subscribers.deliver("dm"), 5)
    assert calls == ["dm"] * 11
    assert not any("dropping" in r.getMessage() for r in caplog.records)
    waits_logged = [r for r in caplog.records if "must wait" in r.getMessage()]
    assert len(waits_logged) == 4  # the 1st, 2nd, 4th and 8th wait, without traceback
    assert not any(r.exc_info for r in waits_logged)


async def test_retry_later_waits_with_the_capped_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("bridge.backoff.asyncio.sleep", fake_sleep)
    subscribers: SubscriberList[str] = SubscriberList("test", str, max_attempts=2, retry_delay=1.0)
    left = {"n": 8}

    async def waits(event: str) -> bool:
        left["n"] -= 1
        if left["n"] >= 0:
            raise RetryLater("down")
        return True

    subscribers.add(waits)
    await subscribers.deliver("x")
    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
