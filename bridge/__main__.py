"""Command line of the bridge, following mautrix's conventions.

python -m bridge -c config.yaml -g -r registration.yaml   # write the registration
python -m bridge -c config.yaml -g --rotate-tokens        # ... with new as_token/hs_token
python -m bridge -c config.yaml                           # run the bridge
python -m bridge -c config.yaml --migrate-only            # only migrate the database
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from bridge import config_file, logredact
from bridge.app import BridgeApp, ListenFailed, run_until_stopped
from bridge.config import Config, ConfigError, load_config, placeholder_problems, problems
from bridge.db import migrate
from bridge.exitcodes import ExitCode
from bridge.matrix.startup import BotAuthFailed, HomeserverUnreachable, PingFailed
from bridge.registration import generated_values, make_registration

log = logging.getLogger("bridge")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    parser.add_argument(
        "-g",
        "--generate-registration",
        action="store_true",
        help="write the appservice registration and exit",
    )
    parser.add_argument(
        "-r",
        "--registration",
        type=Path,
        default=Path("registration.yaml"),
        help="where -g writes the registration (default registration.yaml)",
    )
    parser.add_argument(
        "--rotate-tokens",
        action="store_true",
        help="with -g: replace as_token and hs_token by fresh ones (the homeserver must then "
        "be restarted); without it -g keeps the tokens the config has",
    )
    parser.add_argument(
        "--migrate-only",
        action="store_true",
        help="upgrade the database to the current schema and exit",
    )
    args = parser.parse_args(argv)
    if args.rotate_tokens and not args.generate_registration:
        parser.error("--rotate-tokens goes with -g")
    return args


def generate_registration(
    config_path: Path, registration_path: Path, *, rotate: bool = False
) -> int:
    """Write the registration for the config, once the operator has replaced the example's
    placeholders. Generated tokens and the secrets key go into the config (kept with its
    comments); existing tokens are kept unless ``rotate``. An unchanged registration is not
    rewritten, so only a real change asks for a homeserver restart."""
    config = load_config(config_path)
    found = placeholder_problems(config)
    if found:
        for problem in found:
            log.error("Not writing the registration yet: %s", problem)
        return ExitCode.PLACEHOLDER_CONFIG
    generated = generated_values(config, rotate=rotate)
    if generated:
        config_file.update_values(config_path, generated)
        config = load_config(config_path)
    old = _read_registration(registration_path)
    # Keep the random sender_localpart too: then only a real change rewrites the file.
    localpart = old.get("sender_localpart") if old else None
    registration = make_registration(config, localpart if isinstance(localpart, str) else None)
    if registration == old:
        print(f"{registration_path} is up to date; the homeserver need not be restarted.")
        return ExitCode.OK
    config_file.write_yaml(registration_path, registration)
    print(
        f"Wrote {registration_path}. The homeserver reads registrations only when it starts: "
        "list it in app_service_config_files in homeserver.yaml (once) and restart the "
        "homeserver before starting the bridge."
    )
    return ExitCode.OK


def _read_registration(path: Path) -> dict[str, Any] | None:
    """The registration file as written, or ``None`` if missing or unreadable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def setup_logging(config: Config) -> None:
    logging.basicConfig(level=config.logging.level.upper(), format=config.logging.format)
    # No secret in any line, at any level (bridge/logredact.py).
    logredact.install(logredact.config_secrets(config))


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():  # a second signal while stopping says nothing new
            log.info("Stopping on %s", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await run_until_stopped(BridgeApp(config), stop)


def run(config: Config) -> int:
    """Run the bridge; each kind of startup failure has its own exit code."""
    failures: list[tuple[type[Exception], ExitCode]] = [
        (migrate.DatabaseTooNew, ExitCode.DATABASE),
        (migrate.DatabaseUnreachable, ExitCode.DATABASE_UNREACHABLE),
        (HomeserverUnreachable, ExitCode.HOMESERVER_UNREACHABLE),
        (BotAuthFailed, ExitCode.BOT_AUTH_FAILED),
        (PingFailed, ExitCode.PING_FAILED),
        (ListenFailed, ExitCode.LISTEN_FAILED),
    ]
    try:
        asyncio.run(_serve(config))
    except Exception as e:
        for kind, code in failures:
            if isinstance(e, kind):
                log.error("%s", e)
                return code
        log.exception("The bridge stopped on an unexpected error")
        return ExitCode.UNEXPECTED
    return ExitCode.OK


def upgrade_config(path: Path) -> None:
    """Write the upgrade of a config file from an older version back, and say what changed."""
    try:
        done = config_file.upgrade_file(path)
    except config_file.UpgradeNotWritten as e:
        done = e.upgrade
        log.warning(
            "%s, but could not write it back (%s): edit the file by hand",
            done.summary(str(path)),
            e.error,
        )
    else:
        if done is not None:
            log.info("%s", done.summary(str(path)))
    for warning in done.warnings if done is not None else ():
        log.warning("%s", warning)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.config.exists():
        config_file.create_from_example(args.config)
        print(
            f"Created {args.config} from the example. Edit it (at least homeserver.address, "
            "homeserver.domain and bridge.permissions), then run with -g to write the "
            "registration.",
            file=sys.stderr,
        )
        return ExitCode.CONFIG_CREATED
    try:
        config = load_config(args.config, quiet=True)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    setup_logging(config)
    upgrade_config(args.config)
    if args.generate_registration:
        try:
            return generate_registration(args.config, args.registration, rotate=args.rotate_tokens)
        except ConfigError as e:
            print(f"Configuration error: {e}", file=sys.stderr)
            return ExitCode.BAD_CONFIG
    if args.migrate_only:
        try:
            asyncio.run(migrate.upgrade_to_head(config.database.url))
        except migrate.DatabaseTooNew as e:
            log.error("%s", e)
            return ExitCode.DATABASE
        except migrate.DatabaseUnreachable as e:
            log.error("%s", e)
            return ExitCode.DATABASE_UNREACHABLE
        log.info("Database is at the current schema")
        return ExitCode.OK
    found = problems(config)
    if found:
        for problem in found:
            log.error("Refusing to start: %s", problem)
        return ExitCode.PLACEHOLDER_CONFIG
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
