"""No secret in any log line, at any level (docs/architecture.md §5, Secrets).

Secrets pass through code that logs: mautrix logs the body of every Matrix request at DEBUG
(the bot's message that shows a new recovery phrase among them), aiohttp's access log writes
the request line (``?access_token=<hs_token>`` when a homeserver sends the legacy form),
exceptions carry URLs with passwords. Rather than hoping every call site is careful,
:func:`install` makes every log record pass through :class:`SecretRedactor` when it is
created (a log record factory, so handlers added later, e.g. by a test runner, get clean
records too) and again in a filter on every handler present at startup (which also sees the
``extra`` fields, such as mautrix's copy of the request body).

What is redacted:

* recovery phrases: in a run of 12 or more words of the phrase word list, each whole phrase
  (13 or 25 words with a matching checksum), or the whole run when it holds none (a mistyped
  phrase; 12 words already give most of one away);
* the values of ``access_token=…``, ``Authorization: …`` and ``Bearer …``;
* hex of 32 to 128 digits after a field named like a seed or a secret key;
* the password in ``scheme://user:password@host`` URLs;
* the literal values given to :func:`install` (``as_token``, ``hs_token``, ``secrets_key``);
* mautrix's request bodies: its ``req #n: METHOD url body`` lines keep method and URL only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from bridge.config import Config
from bridge.session.mnemonic import is_phrase_word, looks_like_phrase

__all__ = ["MIN_PHRASE_RUN", "REDACTED", "SecretRedactor", "config_secrets", "install"]

REDACTED = "<redacted>"
PHRASE_REDACTED = "<recovery phrase redacted>"
MIN_PHRASE_RUN = 12
MIN_LITERAL = 16  # shorter "secrets" (placeholders such as "generate") are no secrets

_PATTERNS = (
    re.compile(r"(access_token=)[^&\s\"'#]+", re.IGNORECASE),
    re.compile(r"(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',}]+", re.IGNORECASE),
    re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    re.compile(
        r"((?:seed|secret|secret_key|secrets_key|private_key|privkey)[\"']?\s*[:=]\s*"
        r"(?:b?[\"'])?(?:0x)?)[0-9a-fA-F]{32,128}\b",
        re.IGNORECASE,
    ),
    # a URL's password, unless already masked (migrate.py writes "***")
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]+:)(?!\*+@)[^\s/@]+(?=@)", re.IGNORECASE),
)
# JSON escapes (\n, \", \u00e9...) would glue a letter to the next word: blanked for the scan.
_ESCAPES = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")
_WORD = re.compile(r"(?<![0-9A-Za-z_])[A-Za-z]+(?![0-9A-Za-z_])")
_GAP = re.compile(r"[\s'\",`*_.:;|()\[\]<>-]{1,4}")
_MAUTRIX_REQUEST = re.compile(r"(req #\d+: [A-Z]+ \S+) .+", re.DOTALL)


class SecretRedactor:
    """Removes secrets from text and from log records (module docstring)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._literals: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact these literal values (too short ones are ignored)."""
        self._literals |= {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LITERAL}

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return _redact_phrases(text)

    def scrub(self, record: logging.LogRecord) -> None:
        """Redact a record in place: message, traceback, stack and mautrix's body copy."""
        try:
            message = original = record.getMessage()
        except Exception:  # a broken format string: the handler reports it as logging does
            return
        if _is_mautrix_request(record, message):
            message = _MAUTRIX_REQUEST.sub(r"\1 <body not logged>", message)
        redacted = self.redact(message)
        if redacted != original:  # records without a secret keep their msg and args
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        request = getattr(record, "matrix_http_request", None)
        if isinstance(request, dict) and "content" in request:
            record.matrix_http_request = {**request, "content": "<not logged>"}


def _is_mautrix_request(record: logging.LogRecord, message: str) -> bool:
    # mautrix.api.HTTPAPI._log_request: f"req #{id}: {method} {url} {body}" on its api loggers
    return message.startswith("req #") and record.levelno <= logging.DEBUG


def _redact_phrases(text: str) -> str:
    """Replace every run of at least :data:`MIN_PHRASE_RUN` phrase words: only the phrases
    in it when there are whole ones (13 or 25 words whose checksum matches), else all of it
    (a mistyped phrase is still secret)."""
    scan = _ESCAPES.sub(lambda m: " " * len(m.group(0)), text)
    spans: list[tuple[int, int]] = []
    for run in _word_runs(scan):
        if len(run) >= MIN_PHRASE_RUN:
            spans += _phrases_in(scan, run) or [(run[0][0], run[-1][1])]
    for begin, finish in reversed(spans):
        text = text[:begin] + PHRASE_REDACTED + text[finish:]
    return text


def _word_runs(scan: str) -> list[list[tuple[int, int]]]:
    """The runs of phrase words (their spans) separated by nothing but short gaps."""
    runs: list[list[tuple[int, int]]] = []
    run: list[tuple[int, int]] = []
    for match in _WORD.finditer(scan):
        if not is_phrase_word(match.group(0).lower()):
            run = []
            continue
        if not run or _GAP.fullmatch(scan, run[-1][1], match.start()) is None:
            run = []
            runs.append(run)
        run.append(match.span())
    return runs


def _phrases_in(scan: str, run: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of the whole phrases in ``run``, left to right."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(run):
        for size in (25, 13):
            window = run[i : i + size]
            words = " ".join(scan[a:b] for a, b in window)
            if len(window) == size and looks_like_phrase(words, checksum=True):
                found.append((window[0][0], window[-1][1]))
                i += size
                break
        else:
            i += 1
    return found


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        self.redactor.scrub(record)
        return True


class _RedactingFactory:
    """A log record factory that scrubs each record as it is made."""

    def __init__(self, inner: Callable[..., logging.LogRecord], redactor: SecretRedactor) -> None:
        self.inner = inner
        self.redactor = redactor

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        self.redactor.scrub(record)
        return record


def config_secrets(config: Config) -> list[str]:
    """The literal secrets of a config: both appservice tokens and the seed key."""
    return [config.appservice.as_token, config.appservice.hs_token, config.bridge.secrets_key]


def install(secrets: Iterable[str] = ()) -> SecretRedactor:
    """Redact secrets (and ``secrets``) from every log record of this process from now on.

    Installs the record factory once, and the filter on each handler of the root logger that
    does not have it yet; calling it again only adds secrets and new handlers.
    """
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        factory = _RedactingFactory(factory, SecretRedactor())
        logging.setLogRecordFactory(factory)
    redactor = factory.redactor
    redactor.add(secrets)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
            handler.addFilter(_RedactingFilter(redactor))
    return redactor
