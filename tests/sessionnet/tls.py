"""Self-signed TLS material for the devnet, made at start-up with ``cryptography``.

Real storage nodes and seed nodes use self-signed certificates (§6.1, §6.3); clients either
skip verification (storage nodes) or pin the SHA-256 of the seed's DER certificate.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SelfSignedCert:
    """A certificate/key pair in PEM, plus the SHA-256 of the DER certificate."""

    cert_pem: bytes
    key_pem: bytes
    sha256_hex: str

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            cert_file = Path(tmp) / "cert.pem"
            key_file = Path(tmp) / "key.pem"
            cert_file.write_bytes(self.cert_pem)
            key_file.write_bytes(self.key_pem)
            ctx.load_cert_chain(cert_file, key_file)
        return ctx


def make_self_signed(
    host: str, common_name: str = "sessionnet", valid_days: int = 30
) -> SelfSignedCert:
    """Create a fresh P-256 self-signed certificate for ``host`` (an IP or a DNS name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return SelfSignedCert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        sha256_hex=hashlib.sha256(der).hexdigest(),
    )
