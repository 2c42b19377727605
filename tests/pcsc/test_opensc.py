"""An independent reader, Debian's OpenSC (iasecc driver, "IAS/ECC CPx"), on the virtual CPS.

What OpenSC 0.23 cannot do whatever the card answers: sign with the non-repudiation key
through PSO HASH / PSO CDS, because its iasecc driver builds the partial SHA-256 state from
OpenSSL internals that OpenSSL 3 no longer exposes (``iasecc_qsign_data_sha256`` returns
SC_ERROR_NOT_SUPPORTED). The last test pins that down so that a fixed OpenSC is noticed.
"""

from __future__ import annotations

import glob
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cardreader.cps import SHA256_DIGEST_INFO
from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PROFILES
from cardreader.virtual.vpcd import VpcdLink, slot_port

pytestmark = [
    pytest.mark.pcsc,
    pytest.mark.opensc,
    pytest.mark.skipif(shutil.which("pkcs15-tool") is None, reason="OpenSC is not installed"),
]


def _pkcs11_module() -> str:
    candidates = (
        glob.glob("/usr/lib/*/opensc-pkcs11.so")
        + glob.glob("/usr/lib*/opensc-pkcs11.so")
        + glob.glob("/usr/lib*/pkcs11/opensc-pkcs11.so")
        + glob.glob("/usr/local/lib*/opensc-pkcs11.so")
    )
    if not candidates:
        pytest.skip("opensc-pkcs11.so not found")
    return candidates[0]


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def card(pcscd) -> Iterator[VirtualCps]:
    """The "gp" card in the first slot for the whole module, once pcscd reports it."""
    reader = list_readers()[0]
    virtual = VirtualCps.from_profile("gp")
    assert wait_for_card(reader, present=False)  # the previous test's card, just removed
    link = VpcdLink(virtual, slot_port(0, pcscd.port)).start()
    assert wait_for_card(reader)
    try:
        yield virtual
    finally:
        link.stop()


def test_pkcs15_tool_lists_both_certificates(card: VirtualCps) -> None:
    out = _run("pkcs15-tool", "--list-certificates")
    assert "Certificat d'Authentification CPS" in out
    assert "Certificat de Signature CPS" in out


def test_pkcs15_tool_dumps_pin_keys_and_public_data_objects(card: VirtualCps) -> None:
    out = _run("pkcs15-tool", "-D")
    assert "PIN [Code porteur]" in out
    assert "Private RSA Key [CPS_PRIV_AUT]" in out
    assert "Private RSA Key [CPS_PRIV_SIG]" in out
    assert "nonRepudiation" in out
    for label in ("CPS_ID_CARD", "CPS_NAME_PS", "CPS_INFO_PS", "CPS_ACTIVITY_01_PS"):
        assert f"Data object '{label}'" in out
    # Public data objects are read out; the practice situations stay behind the PIN.
    assert "Data (" in out.split("Data object 'CPS_NAME_PS'")[1].split("Data object")[0]


def test_pkcs15_tool_reads_the_certificate_as_it_is_on_the_card(
    card: VirtualCps, tmp_path: Path
) -> None:
    out = _run("pkcs15-tool", "--read-certificate", "11")
    assert x509.load_pem_x509_certificate(out.encode()) == card.auth_cert


def test_pkcs11_tool_lists_objects_and_signs_after_login(card: VirtualCps, tmp_path: Path) -> None:
    module = _pkcs11_module()
    objects = _run("pkcs11-tool", "--module", module, "-O")
    assert "Certificat d'Authentification CPS" in objects
    assert f"serialNumber={PROFILES['gp'].identity.id_nat_ps}" in objects
    message = b"statement bound to the session key"
    source, signature = tmp_path / "digest-info.bin", tmp_path / "signature.bin"
    # The authentication key offers CKM_RSA_PKCS (INTERNAL AUTHENTICATE): OpenSC pads what
    # it is given, so give it the SHA-256 DigestInfo, as a TLS stack does.
    source.write_bytes(SHA256_DIGEST_INFO + hashlib.sha256(message).digest())
    _run(
        "pkcs11-tool", "--module", module, "--login", "--pin", "1234", "--sign",
        "--mechanism", "RSA-PKCS", "--id", "11", "-i", str(source), "-o", str(signature),
    )
    card.auth_cert.public_key().verify(
        signature.read_bytes(), message, padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.xfail(
    strict=True,
    reason="OpenSC 0.23 + OpenSSL 3: iasecc_qsign_data_sha256 is not supported (PSO HASH)",
)
def test_pkcs11_tool_signs_with_the_non_repudiation_key(card: VirtualCps, tmp_path: Path) -> None:
    module = _pkcs11_module()
    source, signature = tmp_path / "document.bin", tmp_path / "signature.bin"
    source.write_bytes(b"document to sign")
    _run(
        "pkcs11-tool", "--module", module, "--login", "--pin", "1234", "--sign",
        "--mechanism", "SHA256-RSA-PKCS", "--id", "12", "-i", str(source), "-o", str(signature),
    )
    card.sign_cert.public_key().verify(
        signature.read_bytes(), source.read_bytes(), padding.PKCS1v15(), hashes.SHA256()
    )
