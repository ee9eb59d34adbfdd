"""Command line of the bridge, following mautrix's conventions.

python -m bridge -c config.yaml -g -r registration.yaml   # write the registration
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

from bridge import config_file
from bridge.app import BridgeApp, ListenFailed, run_until_stopped
from bridge.config import Config, ConfigError, load_config, problems
from bridge.db import migrate
from bridge.exitcodes import ExitCode
from bridge.matrix.startup import BotAuthFailed, HomeserverUnreachable, PingFailed
from bridge.registration import make_registration, new_secrets_key, new_token

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
        "--migrate-only",
        action="store_true",
        help="upgrade the database to the current schema and exit",
    )
    return parser.parse_args(argv)


def generate_registration(config_path: Path, registration_path: Path) -> int:
    """Fresh tokens into the config (kept with its comments), and the registration file."""
    updates: dict[tuple[str, str], str] = {
        ("appservice", "as_token"): new_token(),
        ("appservice", "hs_token"): new_token(),
    }
    config = load_config(config_path)
    if not config.bridge.secrets_key:
        updates[("bridge", "secrets_key")] = new_secrets_key()
    config_file.update_values(config_path, updates)
    config = load_config(config_path)
    config_file.write_yaml(registration_path, make_registration(config))
    print(
        f"Wrote {registration_path}; add it to app_service_config_files in homeserver.yaml "
        "and restart the homeserver."
    )
    return ExitCode.OK


def setup_logging(config: Config) -> None:
    logging.basicConfig(level=config.logging.level.upper(), format=config.logging.format)


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_until_stopped(BridgeApp(config), stop)


def run(config: Config) -> int:
    """Run the bridge; each kind of startup failure has its own exit code."""
    failures: list[tuple[type[Exception], ExitCode]] = [
        (migrate.DatabaseTooNew, ExitCode.DATABASE),
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
            return generate_registration(args.config, args.registration)
        except ConfigError as e:
            print(f"Configuration error: {e}", file=sys.stderr)
            return ExitCode.BAD_CONFIG
    if args.migrate_only:
        try:
            asyncio.run(migrate.upgrade_to_head(config.database.url))
        except migrate.DatabaseTooNew as e:
            log.error("%s", e)
            return ExitCode.DATABASE
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
