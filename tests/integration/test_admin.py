"""What a bridge admin asks the bot in the management room: ``portals``, ``logins`` and
``status`` (real Synapse and database, the devnet's storage network and community server)."""

from __future__ import annotations

from mautrix.client import Client

from tests.integration.conftest import CommunityDevnet, DmEnv, MatrixUsers
from tests.integration.helpers import bot_says, bridged_room, open_management_room


async def admin_of(env: DmEnv, users: MatrixUsers) -> Client:
    admin = await users.new("admin")
    env.app.config.bridge.permissions[str(admin.mxid)] = "admin"
    return admin


async def test_admin_lists_portals_and_logins_and_checks_status(
    dm_env: DmEnv, matrix_users: MatrixUsers, devnet: CommunityDevnet
) -> None:
    app, bot = dm_env.app, dm_env.app.config.bot_mxid
    admin = await admin_of(dm_env, matrix_users)
    alice = await matrix_users.new("alice")
    room_id = await bridged_room(admin, bot, devnet.url)
    login = await app.logins.create_new(str(alice.mxid))
    mgmt = await open_management_room(admin, bot)

    await admin.send_text(mgmt, "portals")
    text = await bot_says(admin, mgmt, bot, r"^1 portal\(s\):")
    (line,) = [line for line in text.splitlines() if str(room_id) in line]
    assert line.startswith("- community: ") and devnet.url in line
    assert "relay off" in line and " since 20" in line

    await admin.send_text(mgmt, "logins")
    text = await bot_says(admin, mgmt, bot, r"^1 Session login\(s\):")
    assert f"- {alice.mxid}: `{login.session_id}` · since 20" in text
    assert login.identity.phrase not in text and login.identity.seed.hex() not in text

    await admin.send_text(mgmt, "status")
    text = await bot_says(admin, mgmt, bot, "^Status: all OK")
    community = f"community server {devnet.servers.community_url}"
    for name in ("homeserver", "database", community, "Session seed nodes", "Session storage"):
        assert f"- OK: {name}" in text, text

    # The community server stops: status names it as failed, with the reason.
    await devnet.servers.stop_community()
    await admin.send_text(mgmt, "status")
    text = await bot_says(admin, mgmt, bot, r"^Status: 1 check\(s\) failed")
    assert f"- **failed**: {community}: " in text, text
    assert "- OK: database" in text and "- OK: Session seed nodes" in text

    # alice is a user: each admin command is refused, saying what her level allows.
    mine = await open_management_room(alice, bot)
    for command in ("portals", "logins", "status"):
        await alice.send_text(mine, command)
        text = await bot_says(alice, mine, bot, f"not allowed to use `{command}`")
        assert "*admin*" in text and "At your level (*user*)" in text
