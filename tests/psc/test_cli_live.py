"""`dmp-host psc serve`, `dmp-vecps` and `dmp-host serve --psc-issuer` as a professional and
an administrator run them: separate processes over real TLS."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host.pki import init_pki
from host.psc.app import OIDC, REALM
from tests.live import BIN, HostProcess
from wire.session import ecps_nonce

GP = "810001234565"


def _vecps(state: Path, *args: str, code: str = "1357") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dmp-vecps"), "--state", str(state), "--code", code, *args],
                          capture_output=True, text=True, timeout=60)


def test_professional_denies_then_approves_and_the_host_opens_the_session(
        tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki").root
    psc = HostProcess(pki, tmp_path / "psc", "--interval", "1", command=("psc", "serve"))
    psc.start()
    host = None
    try:
        issuer = psc.url + REALM
        ca = pki / "psc" / "ca.pem"
        host = HostProcess(pki, tmp_path / "host", "--psc-issuer", issuer, "--psc-ca", str(ca))
        host.start()
        state = tmp_path / "phone"
        enrolled = _vecps(state, "enrol", GP, "--provider", psc.url, "--ca", str(ca))
        assert enrolled.returncode == 0, enrolled.stderr
        secret = json.loads((tmp_path / "psc" / "clients.json").read_text())["clients"][0]
        provider = httpx.Client(base_url=psc.url, auth=(secret["id"], secret["secret"]),
                                verify=ssl.create_default_context(cafile=ca), timeout=30)
        key = ec.generate_private_key(ec.SECP256R1())
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        workstation = httpx.Client(base_url=host.url, verify=_workstation_context(pki),
                                   timeout=30)
        with provider, workstation:
            def ciba(message: str, nonce: str = "n") -> str:
                answer = provider.post(f"{OIDC}/ext/ciba/auth", data={
                    "scope": "openid", "login_hint": GP, "binding_message": message,
                    "nonce": nonce})
                assert answer.status_code == 200, answer.text
                return str(answer.json()["auth_req_id"])

            first = ciba("Poste CABINET-1 code 1111")
            listed = _vecps(state, "pending")
            assert first in listed.stdout and "Poste CABINET-1 code 1111" in listed.stdout
            wrong = _vecps(state, "approve", first, code="0000")
            assert wrong.returncode == 2 and "Code e-CPS incorrect" in wrong.stderr
            denied = _vecps(state, "deny", first)
            assert denied.returncode == 0 and "CABINET-1 code 1111" in denied.stdout
            assert "refusée" in denied.stdout
            grant = {"grant_type": "urn:openid:params:grant-type:ciba"}
            assert provider.post(f"{OIDC}/token", data={**grant, "auth_req_id": first}
                                 ).json()["error"] == "access_denied"

            challenge = base64.b64decode(
                workstation.post("/session/challenge").json()["challenge"])
            second = ciba("Poste CABINET-1 code 2222", ecps_nonce(challenge, spki))
            approved = _vecps(state, "approve", second)
            assert approved.returncode == 0 and "approuvée" in approved.stdout
            tokens = provider.post(f"{OIDC}/token", data={**grant, "auth_req_id": second})
            opened = workstation.post("/session/ecps", json={
                "idToken": tokens.json()["id_token"],
                "challenge": base64.b64encode(challenge).decode(),
                "sessionPublicKey": base64.b64encode(spki).decode(),
                "structureId": "581234567800015"})
        assert opened.status_code == 201, opened.text
        assert opened.json()["authMeans"] == "e-cps"
    finally:
        if host is not None:
            host.stop()
        psc.stop()


def _workstation_context(pki: Path) -> ssl.SSLContext:
    from agent.client.session import tls_context

    return tls_context(pki / "server" / "ca.pem",
                       (pki / "workstations" / "sandbox.pem").read_bytes(),
                       (pki / "workstations" / "sandbox.key").read_bytes(), None)
