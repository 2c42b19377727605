"""The virtual e-CPS app: what a professional's phone does with Pro Santé Connect.

Enrolment makes an EC P-256 device key, registers its public half with the provider and keeps
the private half encrypted with the app's own code (``STATE/ecps.json``). Every later request
is signed by that key (a short JWT, joserfc); the code is checked by decrypting the key, so a
wrong code sends nothing. Three wrong codes in a row erase the key: the app must be enrolled
again (ours; the real app's rules are not public). The app talks to the provider over HTTPS
with the provider's CA, as a phone would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

STATE_FILE = "ecps.json"
MAX_FAILURES = 3
TOKEN_LIFETIME = 60


class EcpsError(Exception):
    """A refusal the app shows its user (French / English sentence)."""


class WrongCode(EcpsError):
    def __init__(self, tries_left: int) -> None:
        super().__init__(
            f"Code e-CPS incorrect : {tries_left} essai(s) restant(s) / wrong e-CPS code: "
            f"{tries_left} tries left" if tries_left else
            "Code e-CPS incorrect trois fois : l'e-CPS est effacée de cet appareil, "
            "réactivez-la (dmp-vecps enrol) / wrong code three times: the e-CPS was erased "
            "from this device, enrol it again")
        self.tries_left = tries_left


@dataclass(frozen=True)
class PendingLogin:
    id: str
    binding_message: str
    client: str
    expires_in: int


def _valid_code(code: str) -> str:
    if not (code.isascii() and code.isdigit() and 4 <= len(code) <= 8):
        raise EcpsError("Le code e-CPS compte de 4 à 8 chiffres / the e-CPS code is 4 to 8 "
                        "digits")
    return code


class VirtualEcps:
    """The app's state in ``state_dir`` and its calls to the provider."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE

    # -- state ----------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            raise EcpsError("Aucune e-CPS sur cet appareil : activez-la (dmp-vecps enrol) / no "
                            "e-CPS on this device: enrol first")
        return json.loads(self.path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def _write(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out)
        os.replace(temporary, self.path)

    def status(self) -> dict[str, Any]:
        state = self._read()
        return {"idNatPs": state["idNatPs"], "provider": state["provider"],
                "deviceId": state["deviceId"]}

    def _client(self, state: dict[str, Any]) -> httpx.Client:
        context = ssl.create_default_context(cafile=state["ca"])
        return httpx.Client(base_url=state["provider"], verify=context, timeout=10.0)

    # -- enrolment ------------------------------------------------------------------------------

    def enrol(self, provider: str, ca: Path, id_nat_ps: str, code: str) -> str:
        """Make the device key, register it for ``id_nat_ps``; returns the device id."""
        code = _valid_code(code)
        private = ec.generate_private_key(ec.SECP256R1())
        public = ECKey.import_key(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        state: dict[str, Any] = {"provider": provider.rstrip("/"),
                                 "ca": str(Path(ca).resolve())}
        with self._client(state) as client:
            answer = client.post("/ecps/devices", json={
                "idNatPs": id_nat_ps, "publicKey": public.as_dict(private=False)})
        if answer.status_code != 201:
            raise EcpsError(_description(answer))
        body = answer.json()
        state.update({
            "idNatPs": id_nat_ps, "deviceId": body["deviceId"], "audience": body["audience"],
            "failures": 0,
            "key": private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(code.encode("ascii"))).decode("ascii"),
        })
        self._write(state)
        return str(body["deviceId"])

    # -- unlocking with the code ----------------------------------------------------------------

    def _unlock(self, code: str) -> tuple[dict[str, Any], ECKey]:
        state = self._read()
        try:
            private = serialization.load_pem_private_key(
                state["key"].encode("ascii"), password=code.encode("utf-8"))
        except (ValueError, TypeError):
            state["failures"] = int(state.get("failures", 0)) + 1
            left = MAX_FAILURES - state["failures"]
            if left <= 0:
                self.path.unlink()
            else:
                self._write(state)
            raise WrongCode(max(left, 0)) from None
        if state.get("failures"):
            state["failures"] = 0
            self._write(state)
        key = ECKey.import_key(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return state, key

    def _token(self, state: dict[str, Any], key: ECKey, **claims: str) -> str:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        return jwt.encode({"alg": "ES256", "kid": state["deviceId"]}, {
            "iss": state["deviceId"], "aud": state["audience"], "iat": now,
            "exp": now + TOKEN_LIFETIME, "jti": secrets.token_urlsafe(16), **claims}, key)

    # -- what the professional does -------------------------------------------------------------

    def pending(self, code: str) -> list[PendingLogin]:
        state, key = self._unlock(code)
        with self._client(state) as client:
            return self._pending(client, state, key)

    def _pending(self, client: httpx.Client, state: dict[str, Any], key: ECKey
                 ) -> list[PendingLogin]:
        answer = client.get("/ecps/logins",
                            headers={"Authorization": f"Bearer {self._token(state, key)}"})
        if answer.status_code != 200:
            raise EcpsError(_description(answer))
        return [PendingLogin(entry["id"], entry["bindingMessage"], entry["client"],
                             entry["expiresIn"]) for entry in answer.json()["logins"]]

    def decide(self, login_id: str, approve: bool, code: str) -> tuple[PendingLogin, str]:
        """Approve or deny one pending login; returns it (its binding message is what the
        professional is shown) and the provider's status after (approved / denied)."""
        state, key = self._unlock(code)
        with self._client(state) as client:
            shown = next((login for login in self._pending(client, state, key)
                          if login.id == login_id), None)
            if shown is None:
                raise EcpsError("Demande inconnue, expirée ou déjà traitée / unknown, expired "
                                "or already answered request")
            token = self._token(state, key, login=login_id,
                                decision="approve" if approve else "deny")
            answer = client.post(f"/ecps/logins/{login_id}",
                                 headers={"Authorization": f"Bearer {token}"})
        if answer.status_code != 200:
            raise EcpsError(_description(answer))
        return shown, str(answer.json()["status"])


def _description(answer: httpx.Response) -> str:
    try:
        body = answer.json()
        return str(body.get("error_description") or body.get("error"))
    except ValueError:
        return f"HTTP {answer.status_code}"
