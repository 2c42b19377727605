"""The patient's identity in the sandbox (issue 13, docs/ins.md): no document enters a DMP
under an INS that is not *qualified* (RNIV).

- `qualified_identity`: what the scripted deposits carry, as the agent's own would: the
  identity the INS service returns for the card (its traits, not the card's), the INS
  verified with the service, and the passport the patient shows checked against it.
- `identity_scenarios`: the agent as people use it (`dmp-agent run` and its local API). An
  orthoptist's deposit is refused while the identity is only *récupérée*, the passport is
  checked, the identity becomes *qualifiée* and the deposit goes, carrying FR Core's
  identity-reliability extension; then a card for which the INS service answers two
  identities: the agent waits for the user's choice and refuses to deposit until then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from agent.i18n import _
from wire.ins import QUALIFIEE, IdentityReliability

from .cda_deposits import report_pdf
from .services import say

if TYPE_CHECKING:
    import httpx

    from agent.client.dmp import DmpClient
    from cardreader.vitale import VitaleCard
    from wire.ins import InsIdentity

    from .scenarios import Sandbox

PASSPORT = "passeport"
ORTHOPTIC = "BILAN-ORTHOPTIQUE"  # the orthoptist's assessment report (policies/matrix.json)
# A real PDF: the agent makes it a PDF/A in a CDA level 1 document (docs/cda.md).
ASSESSMENT = report_pdf("Bilan orthoptique", [
    "Convergence et motilité oculaire : normales.", "Pas de rééducation nécessaire."])


def traits_line(traits: dict[str, Any]) -> str:
    """An identity's traits on one line, as the user compares them with the document."""
    born = traits["birthDate"]  # YYYYMMDD, 00 for an unknown month or day (lunar)
    return (f"{traits['birthName']} {traits['firstNames']}, {traits['sex']}, né(e) le "
            f"{born[6:]}/{born[4:6]}/{born[:4]} à {traits['birthPlace']}, rang "
            f"{traits['birthRank']} → INS {traits['ins']}")


def qualified_identity(dmp: DmpClient, vitale: VitaleCard
                       ) -> tuple[InsIdentity, IdentityReliability]:
    """The card holder's identity from the INS service, qualified by the passport shown: the
    INS verified with the service first, as `dmp-agent identity --document passeport` does."""
    found = dmp.search_card(vitale, vitale.holder)
    if len(found) != 1:
        raise SystemExit(f"sandbox: the INS service answered {len(found)} identities")
    identity = found[0]
    verdict = dmp.verify(identity)
    if verdict.result != "match":
        raise SystemExit(f"sandbox: the INS service answers {verdict.result} for the INS")
    say(_("identity returned by the INS service: {traits}").format(
        traits=traits_line(identity.as_json())))
    say(_("passport checked against the traits: identity qualified"))
    return identity, IdentityReliability(QUALIFIEE, PASSPORT, dt.date.today())


@contextlib.contextmanager
def _api(page: str) -> Iterator[httpx.Client]:
    """The local API of the agent whose page address (token included) is ``page``."""
    import httpx

    base, token = page.split("/#token=")
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"},
                      timeout=30) as api:
        yield api


def _wait(api: httpx.Client, done: Callable[[dict[str, Any]], bool],
          what: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = api.get("/api/status").json()
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"sandbox: {what}")
        time.sleep(0.05)


def _deposit(api: httpx.Client) -> httpx.Response:
    return api.post("/api/deposits", params={"typeCode": ORTHOPTIC,
                                             "title": "Bilan orthoptique"},
                    content=ASSESSMENT, headers={"content-type": "application/pdf"})


def _stored_identity(sandbox: Sandbox, ins: str) -> str:
    """The identity the host stored with the last submission set for ``ins``: its contained
    Patient's identity-reliability extension (FR Core), read back."""
    from wire.ins import reliability_of

    with contextlib.closing(sqlite3.connect(sandbox.state / "host" / "host.db")) as db:
        rows = db.execute("SELECT resource FROM submission_sets WHERE ins = ? "
                          "ORDER BY rowid DESC LIMIT 1", (ins,)).fetchall()
    resource = json.loads(rows[0][0]) if rows else {}
    for contained in resource.get("contained") or ():
        if contained.get("resourceType") == "Patient":
            found = reliability_of(contained)
            if found is not None:
                return _("identity {status} ({document}, {date}), FR Core's "
                         "identity-reliability extension").format(
                    status=found.status, document=found.document, date=found.validated)
    raise SystemExit("sandbox: the host stored no identity with the deposit")


def orthoptist_qualifies_and_deposits(sandbox: Sandbox, api: httpx.Client) -> None:
    patient = _wait(api, lambda s: s["patient"]["state"] in ("ready", "error"),
                    "the patient was not read")["patient"]
    identity = patient["identity"]
    say(_("identity {status} (returned by the INS service): {traits}").format(
        status=identity["status"], traits=traits_line(identity["traits"])))
    if patient["dmp"]["status"] == "absent":
        created = api.post("/api/dmp", json={"consent": True})
        if created.status_code != 201:
            raise SystemExit(f"sandbox: DMP not created: {created.text}")
        say(_("DMP created (the patient's consent)"))
    refused = _deposit(api)
    if refused.status_code != 409:
        raise SystemExit(f"sandbox: a deposit left before the identity was qualified: "
                         f"{refused.status_code}")
    say(_("*** REFUSED by the agent ({code}): {message}").format(
        code=refused.json()["code"], message=refused.json()["message"]))
    checked = api.post("/api/patient/identity/validate", json={"document": PASSPORT})
    if checked.status_code != 200:
        raise SystemExit(f"sandbox: the check was refused: {checked.text}")
    now = checked.json()["identity"]
    say(_("POST /api/patient/identity/validate {body}: INS verified with the service; "
          "identity {status} ({document}, {date})").format(
        body=json.dumps({"document": PASSPORT}), status=now["status"],
        document=now["document"]["label"], date=now["validatedAt"]))
    queued = _deposit(api)
    if queued.status_code != 202:
        raise SystemExit(f"sandbox: deposit refused: {queued.text}")
    _wait(api, lambda s: not s["outbox"]["items"], "the deposit was not sent")
    ins = now["traits"]["ins"]
    say(_("« Bilan orthoptique » signed, sent, deposited; the host received: {what}").format(
        what=_stored_identity(sandbox, ins)))


def homonyms_wait_for_the_choice(api: httpx.Client, swap: Callable[[], object]) -> None:
    swap()  # the next patient's card: the INS service answers two identities for it
    patient = _wait(api, lambda s: s["patient"]["state"] == "choosing-identity",
                    "the agent did not ask for a choice")["patient"]
    say(_("the INS service answers {count} identities; the agent waits for the user's "
          "choice:").format(count=len(patient["candidates"])))
    for candidate in patient["candidates"]:
        say(f"  {candidate['index']}. {traits_line(candidate)}")
    refused = _deposit(api)
    say(_("*** REFUSED ({status} {code}): {message}").format(
        status=refused.status_code, code=refused.json()["code"],
        message=refused.json()["message"]))
    if refused.status_code < 400:
        raise SystemExit("sandbox: a deposit left for an identity nobody chose")
    # The user compares the traits with the patient's document: born in Bordeaux (33063).
    chosen = next(c for c in patient["candidates"] if c["birthPlace"] == "33063")
    api.post("/api/patient/identity/choose", json={"index": chosen["index"]})
    ready = _wait(api, lambda s: s["patient"]["state"] in ("ready", "error"),
                  "the chosen identity was not taken")["patient"]
    say(_("POST /api/patient/identity/choose {body}: identity {status}, INS {ins} (to be "
          "qualified before any deposit)").format(
        body=json.dumps({"index": chosen["index"]}), status=ready["identity"]["status"],
        ins=ready["identity"]["traits"]["ins"]))


def identity_scenarios(sandbox: Sandbox, step: Callable[[str], None],
                       insert: Callable[[str, int], str],
                       running_agent: Callable[[Sandbox], contextlib.AbstractContextManager[str]],
                       first: int) -> None:
    """The two scenarios, numbered from ``first``, through a running agent."""
    step(_("{number}. orthoptist: the identity the INS service returns is qualified with "
           "the passport, then the assessment is deposited").format(number=first))
    insert("vitale:single", 1)
    insert("cps:orthoptist", 0)
    with running_agent(sandbox) as page, _api(page) as api:
        orthoptist_qualifies_and_deposits(sandbox, api)
        step(_("{number}. homonyms: two identities for one card, the agent never picks "
               "one").format(number=first + 1))
        homonyms_wait_for_the_choice(api, lambda: insert("vitale:homonym", 1))
    insert("vitale:single", 1)  # the first patient's card back, for what follows
