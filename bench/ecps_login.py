"""Time an e-CPS login, from the agent's first call to a session ready, with the virtual e-CPS
app approving at once: challenge (host), CIBA request (PSC), approval (the app, HTTPS), one
poll (PSC), the token checked and the session certificate issued (host). Real TLS, provider
and host in threads, SQLite. The CIBA interval the agent waits before its first poll (2 s by
default) is not in the figure: it is a rule of the protocol, not a cost. Each PSC call opens
its own TLS connection (the test helpers'); an agent keeping one would save a handshake each.

    .venv/bin/python -m bench.ecps_login [ROUNDS]
"""

from __future__ import annotations

import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host.pki import init_pki
from host.psc_token import PscTrust
from host.store import upgrade
from tests.host.tls_harness import tls_host
from tests.psc.harness import CLIENT_ID, CODE, GP, running_psc
from wire.session import ecps_nonce


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    root = Path(tempfile.mkdtemp())
    pki = init_pki(root / "pki").root
    upgrade(f"sqlite:///{root / 'host.db'}")
    with running_psc(pki, root / "psc") as psc, tls_host(
            f"sqlite:///{root / 'host.db'}", pki, root / "blobs",
            psc=PscTrust(psc.issuer, psc.ca, CLIENT_ID)) as host:
        phone = psc.phone(root / "phone")
        steps: dict[str, list[float]] = {name: [] for name in (
            "challenge", "ciba", "approve", "poll", "session", "total")}
        with host.anonymous() as workstation:
            for _ in range(rounds + 1):  # the first round warms the JWKS cache up: not counted
                key = ec.generate_private_key(ec.SECP256R1())
                spki = key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                marks = [time.perf_counter()]
                challenge = base64.b64decode(
                    workstation.post("/session/challenge").json()["challenge"])
                marks.append(time.perf_counter())
                auth_req_id = psc.ciba(nonce=ecps_nonce(challenge, spki)).json()["auth_req_id"]
                marks.append(time.perf_counter())
                phone.decide(auth_req_id, True, CODE)
                marks.append(time.perf_counter())
                token = psc.poll(auth_req_id).json()["id_token"]
                marks.append(time.perf_counter())
                opened = workstation.post("/session/ecps", json={
                    "idToken": token, "challenge": base64.b64encode(challenge).decode(),
                    "sessionPublicKey": base64.b64encode(spki).decode(),
                    "structureId": "581234567800015"})
                marks.append(time.perf_counter())
                assert opened.status_code == 201, opened.text
                if _ == 0:
                    continue
                for name, began, ended in zip(steps, marks, marks[1:], strict=False):
                    steps[name].append(ended - began)
                steps["total"].append(marks[-1] - marks[0])
    print(f"e-CPS login to session ready ({rounds} rounds, {GP}), median / max ms:")
    for name, values in steps.items():
        print(f"  {name:10} {statistics.median(values) * 1e3:7.1f} / {max(values) * 1e3:7.1f}")


if __name__ == "__main__":
    main()
