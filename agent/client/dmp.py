"""The agent's library API for the daily workflows, over an open `HostSession`.

What the CLI, the local API and the tray call: resolve the patient of a Vitale card to the
INS, test the DMP's existence, create it at the counter, record the patient's authorisation
(only after an explicit confirmation), list and retrieve the documents this professional may
see, and change a document's metadata (deposits: `agent.client.provide`, `agent.core.deposit`).
The host decides every access; `policies` is used here only to offer what makes sense (the
document types a profession may deposit, with their labels).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httpx

from agent.client.session import HostSession, SessionError, outcome_of
from agent.i18n import _
from cardreader.vitale import Beneficiary, VitaleCard
from policies import AccessMode, ModeCode, default_matrix
from wire import codes
from wire.ins import (
    InsError,
    InsIdentity,
    Verification,
    identities_from_searchset,
    verification_from_json,
)
from wire.mhd import (
    DocumentEntry,
    Patient,
    WireError,
    parse_search_bundle,
)

FHIR_JSON = {"content-type": "application/fhir+json"}
# The ANS's incremental consultation: a first look at a dossier covers two years.
FIRST_LOOK = dt.timedelta(days=2 * 365)
MODE_HEADER = "X-DMP-Access-Mode"
JUSTIFICATION_HEADER = "X-DMP-Justification"


class DmpError(SessionError):
    """The host refused or failed; ``code`` is its OperationOutcome code."""


@dataclass(frozen=True)
class PatientContext:
    """The patient the professional works on: the INS the identity service returned."""

    ins: str
    ins_oid: str
    first_name: str
    birth_name: str
    birth_date: str

    @property
    def patient(self) -> Patient:
        return Patient(self.ins, self.ins_oid)


def _check(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code in expected:
        return response
    raise DmpError(*outcome_of(response), response.status_code)


def _object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object the host answered; anything else is the host's failure, said so."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise DmpError("bad-answer", _("Unreadable answer from the DMP host"), 502)
    return answer


def _identities(answer: dict[str, Any]) -> list[InsIdentity]:
    try:
        return identities_from_searchset(answer)
    except InsError as error:
        raise DmpError("bad-answer", _("Unreadable answer from the INS service: {error}").format(
            error=error), 502) from None


def context_of(identity: InsIdentity) -> PatientContext:
    """The patient context of an identity the INS service returned."""
    return PatientContext(identity.ins, identity.oid, identity.first_name,
                          identity.birth_name, identity.birth_date)


def mode_headers(mode: AccessMode) -> dict[str, str]:
    headers = {MODE_HEADER: mode.code.value}
    if mode.justification:
        headers[JUSTIFICATION_HEADER] = urllib.parse.quote(mode.justification)
    return headers


def deposit_types(profession: str) -> list[tuple[str, str, str]]:
    """(type code, class code, French label) of what ``profession`` may deposit: never the
    technical types the agent writes itself (the submission set's signature, E1762, class
    99 "Document technique"), which the matrix lists for the host's checks."""
    matrix = default_matrix()
    return [
        (code, kind.class_code, kind.label_fr)
        for code, kind in sorted(matrix.document_types.items(), key=lambda i: i[1].label_fr)
        if matrix.can_write(profession, code) and code != codes.SIGNATURE_TYPE_CODE
        and kind.class_code != codes.SIGNATURE_CLASS_CODE
    ]


class Http(Protocol):
    """What the workflows need of an HTTP client: `httpx.Client`, or a guarded one that
    refuses once the card is gone (`agent.core.professional`)."""

    def get(self, url: str, **kwargs: Any) -> httpx.Response: ...
    def post(self, url: str, **kwargs: Any) -> httpx.Response: ...
    def put(self, url: str, **kwargs: Any) -> httpx.Response: ...
    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...


class DmpClient:
    def __init__(self, http: Http | HostSession) -> None:
        self.http = cast(Http, http.client if isinstance(http, HostSession) else http)

    # -- patient context ----------------------------------------------------------------------
    def resolve(self, card: VitaleCard, person: Beneficiary) -> PatientContext:
        """The INS of a person on a Vitale card, from the identity service (INSi-like)."""
        traits: dict[str, Any] = {
            "birthName": person.birth_name, "firstNames": person.first_name,
            "birthDate": person.birth_date.raw, "insuredNir": card.nir_with_key,
            "birthRank": person.birth_rank,
        }
        if person.sex is not None:
            traits["sex"] = person.sex.value
        answer = _object(_check(self.http.post("/identity/$resolve", json=traits), 200))
        return PatientContext(answer["ins"], answer["insOid"], answer["firstName"],
                              answer["birthName"], answer["birthDate"])

    # -- the INS service (host.routes.ins; docs/ins.md) ------------------------------------
    def _ins(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        return _object(_check(self.http.post(f"/ins/${operation}", json=body), 200))

    def search_card(self, card: VitaleCard, person: Beneficiary) -> list[InsIdentity]:
        """Every identity the INS service answers for a person of a Vitale card (the NIR the
        card shows, the person's birth date and birth rank): none, one or several."""
        answer = self._ins("search-card", {"nir": card.nir_with_key,
                                           "birthDate": person.birth_date.raw,
                                           "birthRank": person.birth_rank})
        return _identities(answer)

    def search_traits(self, *, birth_name: str, first_names: list[str], sex: str,
                      birth_date: str, birth_place: str | None = None) -> list[InsIdentity]:
        """Every identity the INS service answers for typed traits (no card needed)."""
        body: dict[str, Any] = {"birthName": birth_name, "firstNames": first_names, "sex": sex,
                                "birthDate": birth_date}
        if birth_place:
            body["birthPlace"] = birth_place
        return _identities(self._ins("search-traits", body))

    def verify(self, identity: InsIdentity) -> Verification:
        """The INS service's verdict on ``identity`` (match, mismatch, unknown)."""
        answer = self._ins("verify", {
            "ins": identity.ins, "birthName": identity.birth_name,
            "firstNames": identity.first_names.split(), "sex": identity.sex,
            "birthDate": identity.birth_date, "birthPlace": identity.birth_place})
        try:
            return verification_from_json(answer)
        except InsError as error:
            raise DmpError("bad-answer", _("Unreadable answer from the INS service: "
                                           "{error}").format(error=error), 502) from None

    def existence(self, patient: PatientContext, mode: AccessMode | None = None) -> dict[str, Any]:
        headers = mode_headers(mode) if mode else {}
        return _object(_check(self.http.get(f"/dossiers/{patient.ins}", headers=headers), 200))

    def create(
        self,
        patient: PatientContext,
        *,
        consent: bool,
        regulation_centre: bool = True,
        break_the_glass: bool = True,
        emergency_sees_masked: bool = True,
        email: str | None = None,
    ) -> dict[str, Any]:
        """Create the DMP (consent is mandatory); the answer feeds the secrets sheet.
        ``email``: the patient's address (``contact``), where the host sends the patient's
        notifications and the portal the sign-in codes; checked by the caller
        (`agent.core.contact.checked_email`), nothing sent without one."""
        if not consent:
            raise DmpError("consent-required", _("The patient's consent is required"), 400)
        body: dict[str, Any] = {
            "consent": True,
            "emergency": {"regulationCentre": regulation_centre,
                          "breakTheGlass": break_the_glass,
                          "emergencySeesMasked": emergency_sees_masked},
        }
        if email is not None:
            body["contact"] = {"email": email}
        answer = _check(self.http.post(f"/dossiers/{patient.ins}", json=body), 200, 201)
        return _object(answer)

    def record_authorization(self, patient: PatientContext, id_nat_ps: str, *,
                             confirmed: bool) -> dict[str, Any]:
        """Record that the patient authorised this professional: only after the user
        confirmed it explicitly (the patient said yes, in person)."""
        if not confirmed:
            raise DmpError("confirmation-required",
                           _("Confirm the authorization the patient gave"), 400)
        return _object(_check(self.http.put(
            f"/dossiers/{patient.ins}/authorizations/{id_nat_ps}", json={}), 200, 201))

    def close(self, patient: PatientContext, reason: str) -> dict[str, Any]:
        """Close the DMP at the patient's own request (kept ten years, reactivable); the
        host tells the patient."""
        return _object(_check(self.http.post(f"/dossiers/{patient.ins}/$close", json={
            "reason": reason, "patientRequest": True}), 200))

    def reactivate(self, patient: PatientContext) -> dict[str, Any]:
        """Reopen a closed DMP with the patient's consent."""
        return _object(_check(self.http.post(f"/dossiers/{patient.ins}/$reactivate",
                                             json={"consent": True}), 200))

    def designate_medecin_traitant(self, patient: PatientContext,
                                   id_nat_ps: str) -> dict[str, Any]:
        """Record that the patient designates this doctor as médecin traitant DMP."""
        return _object(_check(self.http.put(
            f"/dossiers/{patient.ins}/medecins-traitants/{id_nat_ps}"), 200, 201))

    # -- documents ------------------------------------------------------------------------
    def documents(self, patient: PatientContext, mode: AccessMode | None = None,
                  **filters: str) -> list[DocumentEntry]:
        """Every document this professional may see (follows the pages)."""
        query = {"patient.identifier": f"urn:oid:{patient.ins_oid}|{patient.ins}",
                 "status": "current", **filters}
        headers = mode_headers(mode) if mode else {}
        url = "/fhir/DocumentReference?" + urllib.parse.urlencode(query)
        return self._pages(_check(self.http.get(url, headers=headers), 200).content, headers)

    def new_since(self, patient: PatientContext, since: dt.datetime | None,
                  mode: AccessMode | None = None) -> list[DocumentEntry]:
        """What is new for this professional since ``since`` (their last consultation, the
        host's existence answer says when: ``lastConsultation``), as the ANS recommends an
        incremental consultation: the documents registered since then, a replaced one's new
        version included (the replaced version leaves the current ones), once per uniqueId;
        with no previous consultation, the first look: the last two years."""
        start = since or dt.datetime.now(dt.UTC) - FIRST_LOOK
        # To the microsecond: cut to the second, the search brought back what was registered
        # up to a second before ``since`` (a document deposited just before the last visit).
        found = self.documents(patient, mode,
                               date=f"ge{start.isoformat(timespec='microseconds')}")
        unique: dict[str, DocumentEntry] = {}
        for entry in found:
            kept = unique.get(entry.unique_id)
            if kept is None or (entry.version_id or 0) > (kept.version_id or 0):
                unique[entry.unique_id] = entry
        return list(unique.values())

    def dossier(self, patient: PatientContext, mode: AccessMode | None = None
                ) -> tuple[dict[str, Any], list[DocumentEntry]]:
        """The existence test and, when the host says this professional may consult the
        dossier, its current documents: one round trip (the first page of the search comes
        with the answer; the next pages, if any, follow)."""
        headers = mode_headers(mode) if mode else {}
        answer = _object(_check(self.http.get(f"/dossiers/{patient.ins}",
                                              params={"documents": "current"},
                                              headers=headers), 200))
        bundle = answer.pop("documents", None)
        if bundle is None:
            return answer, []
        return answer, self._pages(json.dumps(bundle).encode(), headers)

    def _pages(self, first: bytes, headers: dict[str, str]) -> list[DocumentEntry]:
        """The documents of a searchset and of the pages its next links lead to."""
        found: list[DocumentEntry] = []
        body: bytes | None = first
        while body is not None:
            page = parse_search_bundle(body)
            found += [e for e in page.entries if e.type_code != codes.SIGNATURE_TYPE_CODE]
            body = None if not page.next_url else _check(
                self.http.get(page.next_url, headers=headers), 200).content
        return found

    def retrieve(self, entry: DocumentEntry, mode: AccessMode | None = None) -> bytes:
        """The document's bytes, checked against what its DocumentReference says: the size
        and the SHA-1 of FHIR's Attachment (both required by PDSm), and the SHA-256 when the
        entry carries one."""
        if not entry.content_url:
            raise DmpError("no-content", _("Document without a content reference"), 400)
        url = urllib.parse.urljoin("/fhir/", entry.content_url)
        body = _check(self.http.get(url, headers=mode_headers(mode) if mode else {}), 200).content
        if not entry.content_matches(body):
            raise DmpError("hash-mismatch", _("Document altered: the content does not match"),
                           502)
        return body

    @staticmethod
    def emergency(justification: str) -> AccessMode:
        return AccessMode(ModeCode.BRIS_DE_GLACE, justification)

    # -- metadata changes (conditional PATCH, JSON Patch; docs/host-documents.md) -----------
    # Each change names the document by its uniqueId and the patient, carries If-Match with the
    # version the professional saw (412 if someone changed it meanwhile) and touches only what
    # PDSm lets change: securityLabel, status, the isArchived extension.

    def find_document(self, patient: PatientContext, unique_id: str,
                      mode: AccessMode | None = None) -> DocumentEntry:
        """The current document ``unique_id`` of this patient, as this professional sees it
        (archived ones included: the default search leaves them out)."""
        for filters in ({}, {"isArchived": "true"}):
            for entry in self.documents(patient, mode, **filters):
                if entry.unique_id == unique_id:
                    return entry
        raise DmpError("document-not-found",
                       _("No such document, or not visible: {id}").format(id=unique_id), 404)

    def _patch_document(self, patient: PatientContext, entry: DocumentEntry,
                        operations: list[dict[str, Any]],
                        mode: AccessMode | None = None) -> DocumentEntry:
        from wire.mhd import JSON_PATCH, document_entry_from_json

        headers = {"content-type": JSON_PATCH, **(mode_headers(mode) if mode else {})}
        if entry.version_id is not None:
            headers["if-match"] = f'W/"{entry.version_id}"'
        query = urllib.parse.urlencode({
            "identifier": f"{codes.RFC3986}|{entry.unique_id}",
            "patient.identifier": f"urn:oid:{patient.ins_oid}|{patient.ins}",
        })
        # httpx.Client and the session's guarded client both offer request(); Http lists
        # only the verbs the first workflows needed.
        response = self.http.request(
            "PATCH", f"/fhir/DocumentReference?{query}",
            content=json.dumps(operations).encode(), headers=headers)
        body = _check(response, 200).content
        try:
            return document_entry_from_json(json.loads(body))
        except (ValueError, WireError):
            return entry  # changed on the host; only the echo is unreadable

    def _set_visibility(self, patient: PatientContext, unique_id: str, label: str, on: bool,
                        mode: AccessMode | None = None) -> DocumentEntry:
        from wire.mhd import security_labels

        entry = self.find_document(patient, unique_id, mode)
        visibility = set(entry.visibility)
        if (label in visibility) == on:
            return entry  # already so: no new version, nothing traced
        visibility = visibility | {label} if on else visibility - {label}
        labels = security_labels(entry.confidentiality, visibility)
        return self._patch_document(
            patient, entry, [{"op": "replace", "path": "/securityLabel", "value": labels}], mode)

    def mask(self, patient: PatientContext, unique_id: str) -> DocumentEntry:
        """Mask the document from professionals (MASQUE_PS)."""
        return self._set_visibility(patient, unique_id, codes.MASQUE_PS, True)

    def unmask(self, patient: PatientContext, unique_id: str) -> DocumentEntry:
        return self._set_visibility(patient, unique_id, codes.MASQUE_PS, False)

    def set_invisible_to_patient(self, patient: PatientContext, unique_id: str
                                 ) -> DocumentEntry:
        """Hide the document from the patient until the announcement consultation (the host
        shows it again one month later)."""
        return self._set_visibility(patient, unique_id, codes.INVISIBLE_PATIENT, True)

    def show_to_patient(self, patient: PatientContext, unique_id: str) -> DocumentEntry:
        """Undo `set_invisible_to_patient` (the announcement consultation took place)."""
        return self._set_visibility(patient, unique_id, codes.INVISIBLE_PATIENT, False)

    def archive(self, patient: PatientContext, unique_id: str) -> DocumentEntry:
        entry = self.find_document(patient, unique_id)
        if entry.archived:
            return entry
        # The host writes isArchived as the resource's only extension; "test" makes the patch
        # fail (400) rather than flip some other extension if that ever changes.
        return self._patch_document(patient, entry, [
            {"op": "test", "path": "/extension/0/url", "value": codes.IS_ARCHIVED_URL},
            {"op": "replace", "path": "/extension/0/valueBoolean", "value": True},
        ])

    def delete(self, patient: PatientContext, unique_id: str) -> DocumentEntry:
        """Logical deletion (status entered-in-error): the host allows it to the author only."""
        entry = self.find_document(patient, unique_id)
        return self._patch_document(patient, entry, [
            {"op": "test", "path": "/status", "value": "current"},
            {"op": "replace", "path": "/status", "value": "entered-in-error"},
        ])
