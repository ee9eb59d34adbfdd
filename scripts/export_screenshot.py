"""Render the HTML transcript of ``export`` (docs/migration.md §4) for a small made-up group
chat and take a screenshot of it with a headless Chromium: docs/export-screenshot.png, shown
in the README. Not run by CI; run it again when the transcript's look changes:

    .venv/bin/python scripts/export_screenshot.py [--out docs/export-screenshot.png]

Needs a headless Chromium on PATH (Debian: ``apt-get install chromium-headless-shell`` or
``chromium``, and ``fonts-noto-color-emoji`` for the reactions); the transcript is built by the bridge's own pure functions, so what is shown
is what ``export`` uploads.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.core.export import EventText, build_archive, render_html  # noqa: E402
from bridge.db.records import (  # noqa: E402
    MessageRecord,
    PortalKind,
    PortalRecord,
    ReactionRecord,
)

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
SAM = "05" + "5a" * 32
TOM = "05" + "70" * 32
START = 1_767_000_000_000  # a made-up Monday morning
MINUTE = 60_000


def fixture() -> dict[str, object]:
    """A group where Sam moved to Matrix (linked), Tom is still on Session, Alice was always
    on Matrix: an edit, reactions from both sides, a file, a message redacted since."""
    portal = PortalRecord(
        id=1,
        kind=PortalKind.GROUP,
        session_key="03" + "ab" * 32,
        mxid="!rowers:example.org",
        name="Rowing club",
        topic=None,
        avatar_mxc=None,
        avatar_hash=None,
        relay_enabled=True,
        relay_login_id=None,
        encrypted=False,
        created_at=START,
        unbridged_at=None,
    )
    said = [
        (TOM, None, "Training moves to 7:00 on Saturday, the river is calmer then.", 0),
        (None, "@alice:example.org", "Works for me. Who brings the spare oars?", 0),
        (SAM, None, "I can, they are still in my car.", 1),
        (TOM, None, "route.pdf", 0),
        (None, "@alice:example.org", "Session closes soon: see you all here on Matrix!", 0),
        (TOM, None, None, 0),
    ]
    messages, texts = [], {}
    for i, (sid, mxid, body, edits) in enumerate(said, 1):
        event = f"$event{i}"
        messages.append(
            MessageRecord(i, 1, event, f"k{i}", 0, sid, mxid, START + i * 7 * MINUTE, edits)
        )
        if body == "route.pdf":
            texts[event] = EventText("m.file", body, "route.pdf", "mxc://example.org/route")
        elif body is not None:
            texts[event] = EventText("m.text", body)
    reactions = [
        ReactionRecord(1, 1, "$r1", 1, "@alice:example.org", "👍"),
        ReactionRecord(2, 1, "$r2", 3, TOM, "🙏"),
        ReactionRecord(3, 1, "$r3", 5, SAM, "🎉"),
    ]
    return build_archive(
        portal,
        messages,
        reactions,
        texts,
        owners={SAM: "@sam:example.org"},
        names={SAM: "Sam", TOM: "Tom", "@alice:example.org": "Alice"},
        exported_at=START + 60 * MINUTE,
    )


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    sys.exit(f"No headless Chromium found (tried {', '.join(BROWSERS)}).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "export-screenshot.png")
    parser.add_argument("--size", default="900,540", help="window width,height in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "transcript.html"
        page.write_text(render_html(fixture()), encoding="utf-8")
        subprocess.run(
            [
                browser(),
                "--headless",
                "--no-sandbox",  # often run as root in a container
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={args.size}",
                f"--screenshot={args.out.resolve()}",
                page.as_uri(),
            ],
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
