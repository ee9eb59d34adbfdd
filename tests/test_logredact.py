"""No secret in a log line: phrases, tokens, authorization values, seeds, URL passwords, and
mautrix's request bodies, whichever handler writes the record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge import logredact
from bridge.logredact import SecretRedactor
from bridge.session.keys import Identity

TOKEN = "as_" + "Q" * 61
PHRASE = Identity.generate().phrase


@pytest.fixture
def installed() -> Iterator[None]:
    """:func:`logredact.install` for one test, then logging as it was."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    filters = {handler: list(handler.filters) for handler in root.handlers}
    yield
    logging.setLogRecordFactory(factory)
    for handler, before in filters.items():
        handler.filters[:] = before


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"body: `{PHRASE}`", PHRASE),
        (f"words {PHRASE.split()}", PHRASE.split()[5]),
        (PHRASE.upper().replace(" ", "\n"), PHRASE.split()[0].upper()),
        (json.dumps({"body": f"phrase:\n\n{PHRASE}"}), PHRASE.split()[0]),
        ("GET /x?user_id=@a:b&access_token=syt_secret_value HTTP/1.1", "syt_secret_value"),
        ("headers {'Authorization': 'Bearer syt_other_secret'}", "syt_other_secret"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("seed=" + "ab" * 16, "ab" * 16),
        ('{"ed25519_seed": "' + "cd" * 32 + '"}', "cd" * 32),
        ("secrets_key: 0x" + "ef" * 32, "ef" * 32),
        ("cannot open postgresql+asyncpg://bridge:hunter2@db/bridge", "hunter2"),
        (f"token {TOKEN} leaked", TOKEN),
    ],
)
def test_secrets_are_redacted(line: str, secret: str) -> None:
    redacted = SecretRedactor([TOKEN]).redact(line)
    assert secret not in redacted
    assert "<redacted>" in redacted or "<recovery phrase redacted>" in redacted


@pytest.mark.parametrize(
    "line",
    [
        "Bridge ready as @sessionbot:example.org",
        "The community server answered every request after the restart of the homeserver today",
        "Posted outbox 12 as community message lobby/34 (05" + "ab" * 32 + ")",
        "ghost @session_05" + "ab" * 32 + ":example.org joined",
        "generate",
        "cannot open the database postgresql+asyncpg://bridge:***@db/bridge",
    ],
)
def test_ordinary_lines_stay(line: str) -> None:
    assert SecretRedactor(["generate", TOKEN]).redact(line) == line


def test_eleven_phrase_words_are_not_a_phrase_but_twelve_are() -> None:
    words = PHRASE.split()
    assert SecretRedactor().redact(" ".join(words[:11])) == " ".join(words[:11])
    assert SecretRedactor().redact(" ".join(words[:12])) == "<recovery phrase redacted>"


def test_every_record_is_scrubbed_even_for_handlers_added_later(installed: None) -> None:
    logredact.install([TOKEN])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # added after install, as a test runner's would be
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("bridge.matrix.mautrix.api.bot")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        body = json.dumps({"msgtype": "m.notice", "body": f"Recovery phrase: `{PHRASE}`"})
        request = {"req_id": 7, "method": "PUT", "url": "https://hs/x", "content": {"b": PHRASE}}
        log.debug("req #7: PUT https://hs/send/m.room.message/1 %s", body,
                  extra={"matrix_http_request": request})  # fmt: skip
        log.info("token %s in a %s", TOKEN, "message")
        try:
            raise ValueError(f"failed with {TOKEN} and {PHRASE}")
        except ValueError:
            log.exception("it broke")
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    text = stream.getvalue()
    assert "req #7: PUT https://hs/send/m.room.message/1 <body not logged>" in text
    assert "token <redacted> in a message" in text
    assert "ValueError: failed with <redacted> and <recovery phrase redacted>" in text
    assert TOKEN not in text
    for word in set(PHRASE.split()):
        assert f" {word}" not in text and f"`{word}" not in text


def test_extras_are_scrubbed_by_the_handlers_present_at_startup(installed: None) -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(matrix_http_request)s"))
    root.addHandler(handler)
    try:
        logredact.install([TOKEN])
        log = logging.getLogger("bridge.matrix.mautrix.api.bot")
        log.setLevel(logging.DEBUG)
        request = {"req_id": 1, "content": {"body": PHRASE}}
        log.debug("req #1: PUT https://hs/x {}", extra={"matrix_http_request": request})
    finally:
        root.removeHandler(handler)
        logging.getLogger("bridge.matrix.mautrix.api.bot").setLevel(logging.NOTSET)
    assert PHRASE.split()[0] not in stream.getvalue()
    assert "<not logged>" in stream.getvalue()


def test_install_twice_adds_secrets_and_keeps_one_factory(installed: None) -> None:
    first = logredact.install(["first-secret-value-0001"])
    second = logredact.install(["second-secret-value-002"])
    assert first is second
    assert second.redact("first-secret-value-0001 second-secret-value-002") == (
        "<redacted> <redacted>"
    )
