"""The standalone devnet's state directory (``python -m tests.sessionnet --state-dir DIR``).

It keeps what a bridge config points at across restarts, so the config is written once: the
ports of the seed (HTTPS and plain HTTP), the storage nodes, the community server and the file
server, the seed's certificate (its SHA-256 is the config's pin; made valid for ten years) and
the community server's public key (part of every community URL). Messages and files are not
kept: the servers start empty each time. But the community server's counters (message ids,
each room's seqno) go on from where the last run stopped (saved when it stops on SIGINT or
SIGTERM): a bridge that read the last run dedups by message id and polls "since seqno N", so
counters starting again at 1 would hide the new posts from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.sessionnet.community_state import CommunityState
from tests.sessionnet.tls import SelfSignedCert, make_self_signed

STATE_FILE = "devnet.json"
SEED_CERT_DAYS = 3650


@dataclass
class DevnetState:
    """What the directory holds; zeros and empty strings mean "not chosen yet"."""

    seed_port: int = 0
    seed_http_port: int = 0
    node_ports: list[int] = field(default_factory=list)
    community_port: int = 0
    file_server_port: int = 0
    community_pubkey: str = ""
    seed_cert_pem: str = ""
    seed_key_pem: str = ""
    seed_cert_sha256: str = ""
    next_message_id: int = 1
    next_file_id: int = 1
    room_sequences: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> DevnetState:
        """The state kept in ``folder``, or a fresh one if there is none yet."""
        path = folder / STATE_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (ValueError, TypeError) as e:
            message = f"{path} is not a devnet state file ({e}); delete it to start anew"
            raise SystemExit(message) from e

    def save(self, folder: Path) -> None:
        """Write the state to ``folder`` (created if needed), readable by its owner only: it
        holds the seed certificate's private key."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, folder / STATE_FILE)

    def seed_cert(self, host: str) -> SelfSignedCert:
        """The kept seed certificate, made (long-lived) on the first start."""
        if not self.seed_cert_pem:
            cert = make_self_signed(host, "sessionnet-seed", valid_days=SEED_CERT_DAYS)
            self.seed_cert_pem, self.seed_key_pem = cert.cert_pem.decode(), cert.key_pem.decode()
            self.seed_cert_sha256 = cert.sha256_hex
        return SelfSignedCert(
            self.seed_cert_pem.encode(), self.seed_key_pem.encode(), self.seed_cert_sha256
        )

    def devnet_kwargs(self, host: str) -> dict[str, Any]:
        """Keyword arguments of :class:`tests.sessionnet.net.Devnet`."""
        return {
            "node_ports": list(self.node_ports),
            "seed_port": self.seed_port,
            "seed_http_port": self.seed_http_port,
            "fixed_seed_cert": self.seed_cert(host),
        }

    def extension_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`tests.sessionnet.extras.CommunityAndFiles`."""
        key = bytes.fromhex(self.community_pubkey) if self.community_pubkey else None
        return {
            "community_port": self.community_port,
            "file_server_port": self.file_server_port,
            "community_pubkey": key,
        }

    def continue_counters(self, community: CommunityState) -> None:
        """Let a fresh community server go on counting where the last run stopped."""
        # The counters are the state's own fields (tests/sessionnet/community_state.py).
        community._next_message_id = max(community._next_message_id, self.next_message_id)
        community._next_file_id = max(community._next_file_id, self.next_file_id)
        for token, room in community.rooms.items():
            room.sequence = max(room.sequence, self.room_sequences.get(token, 0))

    def remember_counters(self, community: CommunityState) -> None:
        """Take the community server's counters into the state (when the devnet stops)."""
        self.next_message_id = community._next_message_id
        self.next_file_id = community._next_file_id
        for token, room in community.rooms.items():
            self.room_sequences[token] = room.sequence

    def remember(self, described: dict[str, Any]) -> None:
        """Take the ports and key the started devnet uses (its JSON line) into the state."""
        self.seed_port = _port(described["seed"])
        if described.get("seed_http"):
            self.seed_http_port = _port(described["seed_http"])
        started = [_port(url) for url in described["nodes"]]
        # Keep the ports of nodes not started this time (a run with fewer --nodes).
        self.node_ports = started + self.node_ports[len(started) :]
        if described.get("community"):
            self.community_port = _port(described["community"])
            self.community_pubkey = described["community_pubkey"]
        if described.get("file_server"):
            self.file_server_port = _port(described["file_server"])


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"no port in {url}")
    return port
