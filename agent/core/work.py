"""The core's work on the dossier: list, read and change documents, deposit through the
outbox (the one deposit path: the content copied and sealed, signed by the card, streamed
by the outbox worker), create the DMP at the counter, record the patient's authorisation."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.contact import checked_email
from agent.core.deposit import BUNDLE_ROOM, as_cda, queue_deposit, read_upload
from agent.core.snapshot import document_json
from agent.core.state import CoreState, PatientState
from agent.errors import AgentError, explained
from agent.i18n import _
from agent.outbox import Item, Outbox, OutboxError, Progress
from agent.outbox import report as outbox_report
from agent.outbox.sealed import sealed_size

# The DMP client, the bundle builder, wire and the policies load at the first host call or
# deposit, not at start (issue 11).
if TYPE_CHECKING:
    from agent.client.dmp import DmpClient
    from wire.cda.replacement import Replaced
    from wire.mhd import DocumentEntry

log = logging.getLogger("agent.core")

# action -> the `DmpClient` method doing it, (context, unique_id) -> DocumentEntry; by name:
# the client is not imported at start.
CHANGES: dict[str, str] = {
    "mask": "mask", "unmask": "unmask",
    "hide-from-patient": "set_invisible_to_patient",
    "show-to-patient": "show_to_patient",
    "archive": "archive", "delete": "delete"}


# What the host's existence test answers (and its creation answer carries).
EXISTENCE_FIELDS = ("status", "closedAt", "closureReason", "retentionUntil", "authorization",
                    "medecinTraitant")


class WorkPart(CoreState):
    # -- documents ------------------------------------------------------------------------
    def document_entries(self, *, type_codes: tuple[str, ...] = (), archived: bool = False,
                         author: str = "", since: dt.date | None = None,
                         until: dt.date | None = None, text: str = "",
                         new: bool = False) -> list[DocumentEntry]:
        """The documents of the patient's dossier this professional may see, filtered: the
        ones the core holds (listed with the dossier, listed again after every change and
        deposit: never fetched twice, issue 18), or asked of the host (archived ones).
        ``new``: only what is new since this professional's last consultation."""
        p = self._patient_ready()
        assert p.context is not None
        self._live_session()
        with self._lock:
            # Held only for an open DMP: for any other, the host's own refusal is the answer.
            held = (list(p.documents) if p.state == "ready" and not archived
                    and (p.dmp or {}).get("status") == "open"
                    and p.listed_changes == p.changes else None)
        if held is not None:
            entries = held
        elif new and not archived:  # only the delta: the ANS's incremental consultation
            with self._calls() as dmp:
                entries = dmp.new_since(p.context, p.last_visit, p.mode)
        else:
            with self._calls() as dmp:
                entries = dmp.documents(p.context, p.mode,
                                        **({"isArchived": "true"} if archived else {}))
        from policies.matrix import default_matrix  # at the first listing, not at start

        out = []
        own = self._own_id()
        for entry in entries:
            if new and not p.is_new(entry, own):
                continue
            if type_codes and entry.type_code not in type_codes:
                continue
            day = entry.creation_time.date()
            if (since and day < since) or (until and day > until):
                continue
            name = f"{entry.author.first_name or ''} {entry.author.last_name or ''}"
            if author and author.lower() not in name.lower():
                continue
            kind = default_matrix().document_types.get(entry.type_code)
            label = kind.label_fr if kind else entry.type_code
            if text and text.lower() not in f"{entry.title} {label}".lower():
                continue
            out.append(entry)
        return out

    def documents(self, **filters: Any) -> list[dict[str, Any]]:
        own = self._own_id()
        p = self._patient_ready()
        return [document_json(e, own, p.is_new(e, own))
                for e in self.document_entries(**filters)]

    def _entry(self, dmp: DmpClient, p: PatientState, unique_id: str) -> DocumentEntry:
        assert p.context is not None
        return dmp.find_document(p.context, unique_id, p.mode)

    def retrieve(self, entry: DocumentEntry) -> bytes:
        """The bytes of ``entry``, its hash checked, in the patient's access mode."""
        p = self._patient_ready()
        with self._calls() as dmp:
            return dmp.retrieve(entry, p.mode)

    def document_content(self, unique_id: str) -> tuple[bytes, str, str]:
        """(bytes, MIME type, title) of a document, its hash checked."""
        p = self._patient_ready()
        with self._calls() as dmp:
            entry = self._entry(dmp, p, unique_id)
            return dmp.retrieve(entry, p.mode), entry.mime_type, entry.title

    def change_document_entry(self, unique_id: str, action: str) -> DocumentEntry:
        if action not in CHANGES:
            raise AgentError(f"action {action!r}: {', '.join(CHANGES)}", code="bad-action",
                             status=404)
        p = self._patient_ready()
        assert p.context is not None
        with self._calls() as dmp:
            entry: DocumentEntry = getattr(dmp, CHANGES[action])(p.context, unique_id)
        self._documents_changed(p)
        return entry

    def _documents_changed(self, p: PatientState) -> None:
        """The dossier changed on the host: what the core holds is stale until the reload
        queued here lands (a listing meanwhile asks the host)."""
        with self._lock:
            p.changes += 1
        self._jobs.put(lambda: self._load(p.generation))

    def change_document(self, unique_id: str, action: str) -> dict[str, Any]:
        return document_json(self.change_document_entry(unique_id, action), self._own_id())

    # -- deposits -------------------------------------------------------------------------
    def deposit_types(self) -> list[dict[str, str]]:
        session = self._live_session()
        assert session.identity is not None
        from agent.client.dmp import deposit_types  # at the first deposit, not at start
        from wire import cda

        # The deposit form is open: the CI-SIS schematrons compile meanwhile (10-30 s once
        # a process), so the document is checked in milliseconds when it comes.
        cda.preload()
        return [{"code": c, "classCode": k, "label": label}
                for c, k, label in deposit_types(session.identity.profession_code)]

    def deposit(self, content: Path | bytes, *, mime_type: str, type_code: str,
                title: str = "", masked: bool = False, invisible_to_patient: bool = False,
                replaces: str | None = None) -> dict[str, Any]:
        """Sign with the CPS and queue in the outbox (``content``, a file or the bytes of a
        document the agent made, is copied: the caller may delete it once this returns);
        the outbox worker sends it. A replacement takes the old version's type, visibility
        and (unless given) title."""
        from agent.client.provide import DepositMetadata  # at the first deposit, not at start

        metadata = DepositMetadata(type_code, title.strip(), mime_type, masked=masked,
                                   invisible_to_patient=invisible_to_patient)
        outbox = self._usable_outbox()
        p = self._patient_ready()
        self._require_qualified(p)  # RNIV: before anything is signed or queued
        session = self._live_session()
        assert p.context is not None and p.identity is not None
        if replaces is None and mime_type in ("text/xml", "application/xml"):
            # A practice's CDA that says it replaces one of the dossier's documents is that
            # document's new version: deposited as new, the old one would stay current (the
            # host refuses it). A version the DMP does not hold leaves nothing to replace.
            from agent.core.cda_documents import declared_replacement
            from wire import cda

            with explained():
                content = read_upload(content, cda.MAX_XML_BYTES)
            found = self._version_to_replace(p, declared_replacement(content), declared=True)
        else:
            found = self._version_to_replace(p, replaces, declared=False)
        replaced = None
        if found is not None:
            old, replaced = found
            metadata = DepositMetadata.replacing(old, title=title, mime_type=mime_type)
        allowed = {t["code"]: t["label"] for t in self.deposit_types()}
        cda_upload = metadata.mime_type in ("text/xml", "application/xml")
        if not cda_upload and metadata.type_code not in allowed:
            raise AgentError(_("type {type}: not a type your profession may deposit").format(
                type=metadata.type_code), code="bad-type", status=400, usage=True)
        if not metadata.title.strip() and not cda_upload:
            metadata = dataclasses.replace(metadata, title=allowed[metadata.type_code])
        situation = session.situation
        # What is deposited is a CDA R2 document, its metadata read from its header
        # (docs/cda.md): refused here, before anything is signed or queued.
        with explained():
            document, metadata = as_cda(
                content, metadata, author=session.author(), setting=session.care_setting(),
                structure_name=situation.structure_name if situation is not None else "",
                identity=p.identity, replaced=replaced)
        if metadata.type_code not in allowed:
            raise AgentError(_("type {type}: not a type your profession may deposit").format(
                type=metadata.type_code), code="bad-type", status=400, usage=True)
        with explained():
            item_id = queue_deposit(outbox, p.context, document.data, metadata,
                                    author=session.author(), setting=session.care_setting(),
                                    signer=session, identity=(p.identity, self._reliability(p)))
        item = outbox.get(item_id)
        self._wakeup.set()
        self._publish("outbox")
        answer: dict[str, Any] = {"id": item_id, "uniqueId": item.unique_id,
                                  "title": metadata.title}
        if found is not None:  # asked for, or said by the practice's CDA
            answer["replaces"] = {"uniqueId": found[0].unique_id, "title": found[0].title}
        if metadata.cda is not None:
            answer.update(volet=metadata.cda.volet, formatCode=metadata.cda.format_code)
        if document.skipped:  # DMP_CDA_CISIS=optional without the CI-SIS files: said
            answer["skippedChecks"] = list(document.skipped)
        return answer

    def _version_to_replace(self, p: PatientState, unique_id: str | None, *, declared: bool
                            ) -> tuple[DocumentEntry, Replaced] | None:
        """The dossier's document ``unique_id`` a deposit replaces and that version as the
        new one names it (its CDA header, retrieved and hash-checked). A version a CDA
        declares (``declared``) that the dossier does not list is none: the DMP does not
        hold it, the deposit is a new document."""
        if unique_id is None:
            return None
        from agent.client.dmp import DmpError
        from agent.core.cda_documents import replaced_version

        with self._calls() as dmp:
            try:
                old = self._entry(dmp, p, unique_id)
            except DmpError as error:
                if declared and error.code == "document-not-found":
                    return None
                raise
            # Its CDA header names the set the new version joins (setId, versionNumber).
            old_cda = (dmp.retrieve(old, p.mode)
                       if old.mime_type in ("text/xml", "application/xml") else None)
        return old, replaced_version(old.unique_id, old.mime_type, old_cda)

    def check_deposit_room(self, size: int, spool: Path | None = None) -> None:
        """Refuse, before a byte is received, a deposit of ``size`` bytes the disk cannot
        hold: its sealed copy and bundle in the outbox, plus the upload's spool file in
        ``spool`` when that is the same disk ("disque plein : 5 Mo nécessaires, 2 Mo
        libres"). An `AgentError` (507)."""
        outbox = self._usable_outbox()
        needed = sealed_size(size) + BUNDLE_ROOM
        with contextlib.suppress(OSError):
            if spool is not None and spool.stat().st_dev == outbox.directory.stat().st_dev:
                needed += size
        outbox.ensure_room(needed)

    def _usable_outbox(self) -> Outbox:
        if self._outbox is None:
            raise AgentError(self._problem or _("Outbox unusable"), code="outbox-unusable",
                             status=503)
        return self._outbox

    def outbox_item(self, item_id: int) -> Item:
        return self._usable_outbox().get(item_id)

    def retry_deposit(self, item_id: int) -> dict[str, Any]:
        outbox = self._usable_outbox()
        try:
            item = outbox.retry(item_id)
        except OutboxError as error:
            raise AgentError(str(error), code="bad-item", status=404) from None
        self._wakeup.set()
        self._publish("outbox")
        return {"id": item.id, "state": item.state.value}

    def _on_progress(self, step: Progress) -> None:
        title = str(step.item.metadata.get("title", ""))
        p = self._patient
        ours = p is not None and p.context is not None and p.context.ins == step.item.patient
        with self._lock:
            self._sending = ({"id": step.item.id, "title": title} if step.kind == "sending"
                             else None)
            if ours and step.kind == "sending":
                # The outbox says "sent" before this step runs: from now on a listing asks
                # the host, which may hold the document any moment.
                assert p is not None
                p.changes += 1
        self._publish("outbox")
        if step.kind == "done":
            self._notice("info", _("Document deposited"), title)
            if ours:
                assert p is not None
                self._documents_changed(p)
        elif step.kind == "failed":
            self._notice("error", _("Deposit refused"),
                         f"{title}: {step.item.last_error}")

    def _outbox_json(self) -> dict[str, Any]:
        if self._outbox is None:
            return dict(outbox_report.EMPTY_JSON)
        paused = self._worker.sender.paused_until if self._worker is not None else 0.0
        # The views see the open session's professional's deposits only (nobody's without
        # a session); the worker sends everyone's.
        session = self._session
        own = (session.identity.id_nat_ps if session is not None and session.alive
               and session.identity is not None else None)
        return outbox_report.outbox_json(self._outbox, sending=self._sending,
                                         paused_until=paused, professional=own)

    def outbox(self) -> dict[str, Any]:
        return self._outbox_json()

    # -- DMP creation and authorisation ----------------------------------------------------
    def existence(self) -> dict[str, Any]:
        """The DMP's state for this patient, asked of the host now."""
        p = self._patient_ready()
        assert p.context is not None
        with self._calls() as dmp:
            return dmp.existence(p.context, p.mode)

    def create_dmp(self, *, consent: bool, break_the_glass: bool = True,
                   regulation_centre: bool = True, emergency_sees_masked: bool = True,
                   email: str | None = None) -> dict[str, Any]:
        """Create the patient's DMP and make the secrets sheet. ``email``: the patient's
        address for the notifications and the portal's sign-in codes (optional; checked
        here, before anything is sent: `bad-email`)."""
        from agent.core.secrets_sheet import SecretsSheet, render_pdf_apart

        if not consent:
            raise AgentError(_("The patient's consent is required"), code="consent-required",
                             status=400, usage=True)
        email = checked_email(email)
        p = self._patient_ready()
        session = self._live_session()
        assert p.context is not None and session.identity is not None
        with self._calls() as dmp:
            state = p.dmp if p.dmp is not None else dmp.existence(p.context)
            if state.get("status") != "absent":
                raise AgentError(_("This patient already has a DMP ({status})").format(
                    status=state.get("status")), code="dmp-exists", status=409)
            created = dmp.create(p.context, consent=True, regulation_centre=regulation_centre,
                                 break_the_glass=break_the_glass,
                                 emergency_sees_masked=emergency_sees_masked, email=email)
        situation = session.situation
        sheet = SecretsSheet.for_created_dmp(
            p.context, created, f"{session.identity.first_name} {session.identity.last_name}",
            email=email, structure=situation.structure_name if situation is not None else "")
        existence = {key: created[key] for key in EXISTENCE_FIELDS if key in created}
        with self._lock:
            p.sheet = render_pdf_apart(sheet)
            if existence.get("status") == "open":
                # The host's answer carries the creator's existence test: no reload, and
                # a new DMP holds no document yet (issue 18: no second round trip).
                p.dmp, p.documents = {"ins": created["ins"], **existence}, []
        if existence.get("status") == "open":
            self._publish("patient")
        else:  # an older host: ask again
            self.reload_patient()
        return {"identifier": created["identifier"], "sheet": "/api/dmp/sheet"}

    def secrets_sheet(self) -> bytes:
        p = self._patient_ready()
        if p.sheet is None:
            raise AgentError(_("No sheet: it exists only when the DMP is created"),
                             code="no-sheet",
                             status=404)
        return p.sheet

    def close_dmp(self, *, reason: str, patient_request: bool) -> dict[str, Any]:
        """Close the DMP at the patient's request, the patient present (kept ten years,
        reactivable); the host tells the patient."""
        reason = reason.strip()
        if not patient_request:
            raise AgentError(_("Confirm that the patient, in person, asks for the closure"),
                             code="patient-request-required", status=400, usage=True)
        if not reason:
            raise AgentError(_("Give the reason for closing"), code="reason-required",
                             status=400, usage=True)
        p = self._patient_ready()
        assert p.context is not None
        with self._calls() as dmp:
            answer = dmp.close(p.context, reason)
        self.reload_patient()
        return answer

    def reactivate_dmp(self, *, consent: bool) -> dict[str, Any]:
        if not consent:
            raise AgentError(_("The patient's consent is required"), code="consent-required",
                             status=400, usage=True)
        p = self._patient_ready()
        assert p.context is not None
        with self._calls() as dmp:
            answer = dmp.reactivate(p.context)
        self.reload_patient()
        return answer

    def designate_medecin_traitant(self, *, confirmed: bool) -> dict[str, Any]:
        """Record that the patient, present, designates the session's doctor as médecin
        traitant DMP (the host refuses a professional who is not a doctor)."""
        if not confirmed:
            raise AgentError(_("Confirm that the patient, in person, designates you"),
                             code="confirmation-required", status=400, usage=True)
        p = self._patient_ready()
        session = self._live_session()
        assert p.context is not None and session.identity is not None
        with self._calls() as dmp:
            answer = dmp.designate_medecin_traitant(p.context, session.identity.id_nat_ps)
        self.reload_patient()
        return answer

    def authorize(self, *, confirmed: bool) -> dict[str, Any]:
        if not confirmed:
            raise AgentError(_("Confirm that the patient, in person, authorizes you"),
                             code="confirmation-required", status=400, usage=True)
        p = self._patient_ready()
        session = self._live_session()
        assert p.context is not None and session.identity is not None
        with self._calls() as dmp:
            answer = dmp.record_authorization(p.context, session.identity.id_nat_ps,
                                              confirmed=True)
        self.reload_patient()
        return answer
