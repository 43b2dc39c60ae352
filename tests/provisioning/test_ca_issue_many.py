"""Issuing many certificates at once (a region's devices): each is what ``issue`` makes, and the registry
records every one, written once."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kuzet.provisioning.ca import CertificateAuthority


def test_issue_many_records_each_certificate_signed_by_the_ca(tmp_path):
    ca = CertificateAuthority.create(tmp_path / "ca.key", tmp_path / "ca.crt", tmp_path / "issued.json", "x")
    ca.issue("broker", "broker", server_names=["127.0.0.1"], client=False)
    names = [(f"cam-{n:04d}", "camera") for n in range(50)] + [("badge-0001", "badge")]
    issued = ca.issue_many(names)
    assert len(issued) == len(names)
    for (name, role), (key, cert) in zip(names, issued, strict=True):
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        cert.verify_directly_issued_by(ca.cert)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
    rows = ca.issued()
    assert [r.common_name for r in rows] == ["broker", *(name for name, _ in names)]
    assert len({r.serial for r in rows}) == len(rows)
    assert {r.serial for r in rows[1:]} == {cert.serial_number for _, cert in issued}
