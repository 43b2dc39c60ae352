"""The site's certificate authority: it signs the broker's, central's and every device's certificate, keeps a
registry of what it issued, and publishes the revocation list (CRL) the broker checks on every connection.

Keys are ECDSA P-256 (small, fast on a Raspberry Pi, supported by Mosquitto's OpenSSL). A client
certificate's common name is its MQTT identity: Mosquitto's ``use_identity_as_username`` makes the CN the
username the ACL's ``%u`` stands for, so the CN of a device certificate is the device id.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kuzet.shared import timeutil

CA_YEARS = 20
LEAF_YEARS = 5
# OpenSSL refuses every connection once a CRL is past its next-update time, so the broker's local CRL is
# issued for long; it is re-issued on every revocation anyway.
CRL_DAYS = 3650


class CAError(RuntimeError):
    pass


@dataclass
class Issued:
    serial: int
    common_name: str
    role: str  # "broker", "central" or a device kind
    issued_at: str
    not_after: str
    revoked_at: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner alone (created 0600, never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, registry_path: Path):
        self.key = key
        self.cert = cert
        self.registry_path = registry_path

    # --- creation and loading ---------------------------------------------------------------------------

    @classmethod
    def create(cls, key_path: Path, cert_path: Path, registry_path: Path, site: str) -> CertificateAuthority:
        if key_path.exists():
            raise CAError(f"{key_path} exists: this site already has a CA (refusing to replace it)")
        key = new_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kuzet"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"Kuzet site CA {site}"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_path, key_pem(key))
        cert_path.write_bytes(cert_pem(cert))
        registry_path.write_text("[]\n")
        return cls(key, cert, registry_path)

    @classmethod
    def load(cls, key_path: Path, cert_path: Path, registry_path: Path) -> CertificateAuthority:
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except FileNotFoundError as exc:
            raise CAError(
                f"the site CA is missing: {exc.filename} (run 'kuzet provision site-init')"
            ) from None
        return cls(key, cert, registry_path)

    # --- registry ---------------------------------------------------------------------------------------

    def issued(self) -> list[Issued]:
        return [Issued(**row) for row in json.loads(self.registry_path.read_text())]

    def _save(self, rows: list[Issued]) -> None:
        tmp = self.registry_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
        os.replace(tmp, self.registry_path)

    def active(self, common_name: str) -> list[Issued]:
        return [r for r in self.issued() if r.common_name == common_name and r.revoked_at is None]

    # --- issuing ----------------------------------------------------------------------------------------

    def issue(
        self,
        common_name: str,
        role: str,
        *,
        server_names: list[str] = (),
        client: bool = True,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A fresh key and a certificate for it, recorded in the registry."""
        return self.issue_many([(common_name, role)], server_names=server_names, client=client)[0]

    def issue_many(
        self, requests: list[tuple[str, str]], *, server_names: list[str] = (), client: bool = True
    ) -> list[tuple[ec.EllipticCurvePrivateKey, x509.Certificate]]:
        """``issue`` for each (common name, role), the registry written once: a region's thousands of devices
        in seconds, not the hours that rewriting the whole registry per certificate takes."""
        rows = self.issued()
        issued = []
        for common_name, role in requests:
            key, cert, issued_at = self._certificate(common_name, role, server_names, client)
            rows.append(
                Issued(
                    serial=cert.serial_number,
                    common_name=common_name,
                    role=role,
                    issued_at=timeutil.to_wire(issued_at),
                    not_after=timeutil.to_wire(cert.not_valid_after_utc),
                )
            )
            issued.append((key, cert))
        self._save(rows)
        return issued

    def _certificate(
        self, common_name: str, role: str, server_names: list[str], client: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, datetime]:
        key = new_key()
        now = _now()
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kuzet"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * LEAF_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in server_names]), critical=False
            )
        return key, builder.sign(self.key, hashes.SHA256()), now

    # --- revocation -------------------------------------------------------------------------------------

    def revoke(self, common_name: str) -> list[Issued]:
        """Mark every active certificate of ``common_name`` revoked; the caller then rewrites the CRL."""
        rows = self.issued()
        revoked = []
        stamp = timeutil.to_wire(_now())
        for row in rows:
            if row.common_name == common_name and row.revoked_at is None:
                row.revoked_at = stamp
                revoked.append(row)
        if not revoked:
            known = any(r.common_name == common_name for r in rows)
            raise CAError(
                f"{common_name!r} has no active certificate"
                + (" (already revoked)" if known else " issued by this site's CA")
            )
        self._save(rows)
        return revoked

    def crl_pem(self) -> bytes:
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=CRL_DAYS))
        )
        for row in self.issued():
            if row.revoked_at is None:
                continue
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(row.serial)
                .revocation_date(timeutil.from_wire(row.revoked_at))
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
