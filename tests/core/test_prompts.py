from __future__ import annotations

from bridge.core.prompts import Prompts


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_peek_leaves_the_prompt_open_and_cancel_closes_it() -> None:
    clock = Clock()
    prompts = Prompts(clock)
    prompts.open("@a:x", "recovery phrase", "!r:x", timeout=10)
    assert prompts.peek("@a:x", "!other:x") is None
    assert prompts.peek("@a:x", "!r:x") is not None
    assert prompts.peek("@a:x", "!r:x") is not None
    assert prompts.cancel("@a:x")
    assert prompts.take("@a:x", "!r:x") is None
    assert not prompts.cancel("@a:x")


def test_an_expired_prompt_is_not_seen() -> None:
    clock = Clock()
    prompts = Prompts(clock)
    prompts.open("@a:x", "recovery phrase", "!r:x", timeout=10)
    clock.now = 11
    assert prompts.peek("@a:x", "!r:x") is None
    assert not prompts.cancel("@a:x")
