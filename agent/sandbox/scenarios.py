"""The daily scenarios, end to end, as the sandbox plays them.

Everything is real: the reference host is its own process (`dmp-host serve`, TLS 1.3,
SQLite) — the agent meets it only over the wire —, the cards are virtual cards in the real
pcscd issued by the host's health CA, and the agent reads them through PC/SC, opens
card-rooted sessions, and deposits through its outbox. The PIN is typed by the harness and
never printed; patient identities are shown on screen (this is the practice's own view) and
never logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.client.dmp import DmpClient, DmpError, PatientContext, context_of, deposit_types
from agent.client.provide import DepositMetadata
from agent.config import AgentConfig
from agent.core.deposit import as_cda, make_sender, queue_deposit, recover_contents
from agent.core.pin import FixedPrompt
from agent.core.professional import ProfessionalSession
from agent.i18n import _
from agent.install.enrol import enrol_from_pki, load_workstation
from agent.logs import setup_logging
from agent.outbox import RetryPolicy, Sender, open_outbox
from cardreader.apdu import ApduProtocol
from cardreader.pcsc import PcscConnection, list_readers, wait_for_card
from cardreader.virtual import cli as vcard
from cardreader.vitale import Vitale2Profile, VitaleCard
from wire.mhd import Author

from .cda_deposits import (
    OPH_BRE_EXAMPLE,
    TROD_EXAMPLE,
    choose_cda_mode,
    report_pdf,
    said,
    show_summary,
    structured_examples,
)
from .ecps_scenario import host_arguments, orthoptist_with_ecps_deposits, pro_sante_connect
from .identity import identity_scenarios, qualified_identity
from .patient_side import (
    PATIENT_EMAIL,
    SANDBOX_PASSWORD,
    PostOffice,
    body_of,
    patient_at_home,
    patient_side,
)
from .services import free_port, say, service

HARNESS_PIN = "1234"
BIN = Path(sys.executable).parent
REPORT = report_pdf("Compte rendu d'examen de la vue", [
    "Réfraction : OD -1,25 (-0,50 à 90°), OG -1,00.", "Acuité corrigée 10/10 à chaque oeil.",
    "Renouvellement de l'équipement conseillé."])


@dataclass
class Sandbox:
    state: Path
    pki: Path
    host_url: str
    host_process: subprocess.Popen[bytes]
    config: AgentConfig
    port_base: int

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.state / 'host' / 'host.db'}"


def sandbox_pki(state: Path) -> Path:
    """`dmp-host pki init` once (the provider and the host share it)."""
    pki = state / "pki"
    if not (pki / "health-ca").is_dir():
        subprocess.run([str(BIN / "dmp-host"), "pki", "init", str(pki)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return pki


@contextlib.contextmanager
def reference_host(state: Path, *options: str
                   ) -> Iterator[tuple[Path, str, subprocess.Popen[bytes]]]:
    """`dmp-host pki init` then `dmp-host serve [options]` in its own process; stopped on
    exit."""
    pki = sandbox_pki(state)
    port = free_port()
    with service([str(BIN / "dmp-host"), "serve", "--pki", str(pki), "--data",
                  str(state / "host"), "--port", str(port), *options], state / "host.log",
                 port, name="the host") as process:
        yield pki, f"https://127.0.0.1:{port}", process


def insert(profile: str, slot: int, state: Path, ca: Path, port: int) -> str:
    reader = list_readers()[slot]
    with contextlib.redirect_stdout(None):
        vcard.remove(slot, state / "cards")
    wait_for_card(reader, present=False)
    with contextlib.redirect_stdout(None):
        if vcard.insert(profile, slot, state / "cards", ca, port) != 0:
            raise SystemExit(f"sandbox: could not insert {profile}")
    wait_for_card(reader)
    return reader


def read_vitale(reader: str) -> VitaleCard:
    with PcscConnection(reader) as connection:
        return Vitale2Profile(ApduProtocol(connection)).read()


@contextlib.contextmanager
def professional(
    sandbox: Sandbox, reader: str
) -> Iterator[tuple[ProfessionalSession, DmpClient, Author]]:
    """The card in ``reader`` unlocked (the harness types the PIN) and its session; the
    session ends at once if the card is pulled out."""
    with ProfessionalSession.open(reader, load_workstation(sandbox.config), sandbox.host_url,
                                  FixedPrompt(HARNESS_PIN)) as session:
        identity, situation = session.identity, session.situation
        assert identity is not None and situation is not None
        author = session.author()
        say(_("session open: {first} {last} ({id}), {structure}").format(
            first=identity.first_name, last=identity.last_name, id=identity.id_nat_ps,
            structure=situation.structure_name))
        yield session, session.dmp(), author
    say(_("session closed"))


def _patient(dmp: DmpClient, vitale: VitaleCard) -> PatientContext:
    person = vitale.holder
    patient = dmp.resolve(vitale, person)
    say(_("patient: {first} {last}, born {date} → INS {ins}").format(
        first=person.first_name, last=person.last_name, date=person.birth_date,
        ins=patient.ins))
    return patient


def pharmacist_creates_a_dmp(sandbox: Sandbox, cps: str,
                             vitale_reader: str) -> tuple[PatientContext, str]:
    """The DMP created with the patient's email; (patient, the sheet's access code)."""
    vitale = read_vitale(vitale_reader)
    with professional(sandbox, cps) as (session, dmp, _author):
        patient = _patient(dmp, vitale)
        before = dmp.existence(patient)
        say(_("existence test: {status}").format(status=before["status"]))
        created = dmp.create(patient, consent=True, email=PATIENT_EMAIL)
        sheet = sandbox.state / "fiche-secrets.txt"
        sheet.write_text(
            f"DMP de {patient.first_name} {patient.birth_name}\nIdentifiant: "
            f"{created['identifier']}\nCode d'accès provisoire: {created['accessCode']}\n"
            f"Adresse: {PATIENT_EMAIL}\n"
        )
        os.chmod(sheet, 0o600)
        say(_("DMP created ({email}); secrets sheet: {sheet}").format(email=PATIENT_EMAIL,
                                                                       sheet=sheet))
        pharmacist_vaccinates(sandbox, session, dmp, vitale, patient)
        # The rapid strep test done at the counter, as the pharmacy's software writes it.
        for type_code, document in structured_examples(patient.ins, patient.ins_oid,
                                                       (TROD_EXAMPLE,)):
            _deposit(sandbox, session, dmp, vitale, patient, document,
                     DepositMetadata(type_code, "", "text/xml"))
    return patient, str(created["accessCode"])


def pharmacist_vaccinates(sandbox: Sandbox, session: ProfessionalSession, dmp: DmpClient,
                          vitale: VitaleCard, patient: PatientContext) -> str:
    """The flu shot at the counter, recorded as a CI-SIS vaccination note (the core's
    `note_for`, docs/cda.md "The vaccination record") and deposited on the agent's path."""
    from agent.core.vaccination import VAC_NOTE_TYPE, VACCINES, checked_vaccination, note_for

    identity, _reliability = qualified_identity(dmp, vitale)
    vaccination = checked_vaccination(
        vaccine="61402736", date=dt.date.today().isoformat(), lot="SBX2026A", dose=1,
        route="20035000", site="16217701000119102", birth_date=identity.birth_date)
    say(_("vaccination: {vaccine}, lot {lot}, by the pharmacist").format(
        vaccine=VACCINES[vaccination.vaccine].label.split(",")[0], lot=vaccination.lot))
    return _deposit(sandbox, session, dmp, vitale, patient,
                    note_for(session, identity, vaccination),
                    DepositMetadata(VAC_NOTE_TYPE, "", "text/xml"))


def _deposit(sandbox: Sandbox, session: ProfessionalSession, dmp: DmpClient,
             vitale: VitaleCard, patient: PatientContext, content: bytes,
             metadata: DepositMetadata) -> str:
    """One deposit on the agent's path: made a checked CDA (`as_cda`: a PDF as a PDF/A in
    a level 1 document, a structured CDA as it is), signed by the card, queued, sent."""
    author = session.author()
    # As the agent deposits: the INS service's identity, qualified (docs/ins.md).
    identity = qualified_identity(dmp, vitale)
    if identity[0].ins != patient.ins:
        raise SystemExit("sandbox: the INS service returned another patient")
    patient = context_of(identity[0])
    situation = session.situation
    document, metadata = as_cda(content, metadata, author=author,
                                structure_name=situation.structure_name if situation else "",
                                setting=session.care_setting(), identity=identity[0])
    assert metadata.cda is not None
    say(_("CDA {volet} ({format}), {size} bytes{skipped}").format(
        volet=metadata.cda.volet, format=metadata.cda.format_code, size=len(document.data),
        skipped=said(document.skipped)))
    outbox = open_outbox(sandbox.config)
    try:
        recover_contents(outbox)
        item = queue_deposit(outbox, patient, document.data, metadata, author=author,
                             setting=session.care_setting(), signer=session,
                             identity=identity)
        say(_("« {label} » signed by the card and queued").format(label=metadata.title))
        send = make_sender(session.calls, outbox)
        report = Sender(outbox, RetryPolicy.from_config(sandbox.config),
                        on_progress=send.on_progress).send_pending(send)
        counts = outbox.counts()
        say(_("sent: {sent} stored, {refused} refused; outbox: {pending} waiting, {done} "
              "done, {failed} refused").format(
            sent=report.sent, refused=report.failed, pending=counts.pending,
            done=counts.done, failed=counts.failed))
        return outbox.get(item).unique_id
    finally:
        outbox.close()


def optician_deposits(sandbox: Sandbox, cps: str, vitale_reader: str) -> str:
    vitale = read_vitale(vitale_reader)
    with professional(sandbox, cps) as (session, dmp, author):
        patient = _patient(dmp, vitale)
        type_code, _class, label = next(
            t for t in deposit_types(author.profession) if t[0] == "34810-2")
        unique_id = _deposit(sandbox, session, dmp, vitale, patient, REPORT,
                             DepositMetadata(type_code, label))
        # The refraction report as the shop's software writes it (CI-SIS OPH-BRE).
        for type_code, document in structured_examples(patient.ins, patient.ins_oid,
                                                       (OPH_BRE_EXAMPLE,)):
            _deposit(sandbox, session, dmp, vitale, patient, document,
                     DepositMetadata(type_code, "", "text/xml"))
        return unique_id


def gp_visit(sandbox: Sandbox, cps: str, vitale_reader: str) -> Author:
    """The consultation; the GP (as the rules know them) returned."""
    vitale = read_vitale(vitale_reader)
    with professional(sandbox, cps) as (_session, dmp, author):
        patient = _patient(dmp, vitale)
        state = dmp.existence(patient)
        say(_("DMP {status}, authorization: {authorization}").format(
            status=state["status"], authorization=state["authorization"]))
        if state["authorization"] == "forbidden":
            try:
                dmp.documents(patient)
            except DmpError as refused:
                say(_("*** REFUSED: {reason}").format(reason=refused))
                return author
            raise SystemExit("sandbox: a blocked professional was served")
        if state["authorization"] != "valid":
            dmp.record_authorization(patient, author.id_nat_ps, confirmed=True)
            say(_("the patient's authorization recorded (confirmed)"))
        # The practice software's VSM, lab report and vaccination note, each checked by the
        # agent against its volet, deposited (with the CI-SIS files).
        for type_code, document in structured_examples(patient.ins, patient.ins_oid):
            _deposit(sandbox, _session, dmp, vitale, patient, document,
                     DepositMetadata(type_code, "", "text/xml"))
        documents = dmp.documents(patient)
        for entry in documents:
            say(_("document: {title} ({type}) by {author}, {size} bytes").format(
                title=entry.title, type=entry.type_code, author=entry.author.last_name,
                size=entry.size))
        if documents:  # the optician's report, which step 3 reads
            report = next((e for e in documents if e.type_code == "34810-2"), documents[0])
            body = dmp.retrieve(report)
            saved = sandbox.state / "document.xml"  # a CDA R2 document
            saved.write_bytes(body)
            say(_("retrieved and saved: {path} ({size} bytes, hash checked)").format(
                path=saved, size=len(body)))
        show_summary(dmp, patient)  # the sections the structured documents fill
    return author


def break_the_glass(sandbox: Sandbox, cps: str, vitale_reader: str) -> None:
    vitale = read_vitale(vitale_reader)
    with professional(sandbox, cps) as (_session, dmp, _author):
        patient = _patient(dmp, vitale)
        mode = DmpClient.emergency("Patient inconscient aux urgences, pronostic vital engagé")
        say(_("*** BREAK-THE-GLASS ACCESS — traced and notified to the patient ***"))
        state = dmp.existence(patient, mode)
        documents = dmp.documents(patient, mode)
        say(_("DMP {status}: {count} document(s) visible in an emergency").format(
            status=state["status"], count=len(documents)))


def gp_access_emailed(office: PostOffice, gp: Author) -> None:
    """The patient's notification of the GP's first access, from the post office."""
    path, message = office.wait_for(
        lambda m: "nouveau professionnel" in str(m["Subject"])
        and (gp.last_name or "").upper() in body_of(m).upper())
    say(_("email to the patient ({file}): « {subject} »").format(
        file=path.name, subject=message["Subject"]))
    for line in body_of(message).splitlines()[:4]:
        if line.strip():
            say(f"  {line.strip()}")


def show_access_log(sandbox: Sandbox, patient: PatientContext) -> None:
    """What the patient reads: the host's access history (their portal; here the host's CLI)."""
    result = subprocess.run(
        [str(BIN / "dmp-host"), "patient", "access-log", patient.ins,
         "--database", sandbox.database_url],
        capture_output=True, text=True, check=False,
    )
    for line in result.stdout.splitlines()[:20]:
        say(line)


@contextlib.contextmanager
def running_agent(sandbox: Sandbox) -> Iterator[str]:
    """`dmp-agent run --no-tray` for the sandbox's user, driven over its local API with the
    cards left in the readers (the nurse's CPS, the patient's Vitale card); yields the page's
    address (token included)."""
    import dataclasses

    import httpx

    from agent.config import write_config
    from agent.views.localapi.guard import token_path

    port = free_port()
    config = dataclasses.replace(sandbox.config, api_port=port)
    config_file = write_config(config, sandbox.state / "agent" / "agent.toml")
    env = {**os.environ, "DMP_AGENT_CONFIG": str(config_file),
           "DMP_AGENT_PROVISIONING": str(sandbox.state / "no-provisioning"),
           "DMP_AGENT_SYSTEM_CONFIG": str(sandbox.state / "no-system-config.toml")}
    env.pop("DISPLAY", None)
    log = open(sandbox.state / "agent-run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(BIN / "dmp-agent"), "run", "--no-tray"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("sandbox: dmp-agent run did not start (agent-run.log)")
            time.sleep(0.05)
        token = token_path(config).read_text().strip()
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"},
                          timeout=30) as api:
            def status() -> dict[str, Any]:
                answer: dict[str, Any] = api.get("/api/status").json()
                return answer

            deadline = time.monotonic() + 10
            while status()["session"]["state"] != "locked":
                if time.monotonic() > deadline:
                    raise SystemExit("sandbox: the agent did not see the CPS")
                time.sleep(0.05)
            say(_("local API on {url} (token in {path})").format(url=base,
                                                                  path=token_path(config)))
            opened = api.post("/api/session", json={"pin": HARNESS_PIN})
            if opened.status_code != 200:
                raise SystemExit(f"sandbox: session refused: {opened.text}")
            who = opened.json()["professional"]
            say(_("POST /api/session: open for {first} {last}").format(
                first=who["firstName"], last=who["lastName"]))
            deadline = time.monotonic() + 15
            while (patient := status()["patient"])["state"] not in ("ready", "error"):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            say(_("GET /api/status: patient {state}, DMP {status}, {count} document(s) "
                  "visible to {first} {last}").format(
                state=patient["state"], status=(patient.get("dmp") or {}).get("status"),
                count=len(patient["documents"]), first=who["firstName"],
                last=who["lastName"]))
            say(_("the page: {url}/ (opened from the tray icon or `dmp-agent page`)").format(
                url=base))
            yield f"{base}/#token={token}"
            api.delete("/api/session")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def play(state: Path, pcscd_port: int, step: Callable[[str], None], *,
         keep: Callable[[Sandbox], None] | None = None) -> None:
    with contextlib.ExitStack() as stack:
        choose_cda_mode()  # before the host starts: it inherits the mode
        # The reference Pro Santé Connect first: the host trusts its tokens (e-CPS, step 9).
        provider = stack.enter_context(pro_sante_connect(state, sandbox_pki(state)))
        pki, url, process = stack.enter_context(reference_host(state,
                                                               *host_arguments(provider)))
        config = AgentConfig(host_url=url, host_ca=pki / "server" / "ca.pem",
                             credentials_dir=state / "agent" / "workstation",
                             data_dir=state / "agent" / "data", log_dir=state / "agent" / "log")
        enrol_from_pki(pki, "sandbox", config=config)
        setup_logging(config)
        sandbox = Sandbox(state, pki, url, process, config, pcscd_port)
        ca = pki / "health-ca"
        step(_("reference host up (TLS 1.3, mutual TLS); workstation enrolled"))
        say(url)

        office, portal = stack.enter_context(patient_side(state, sandbox.database_url, BIN))
        step(_("the patient's side up: portal, notification sender, the sandbox's mailbox"))
        say(_("patient portal: {portal}; mail: {mail}").format(portal=portal,
                                                              mail=office.directory))

        step(_("1. pharmacy counter: the pharmacist creates the patient's DMP and records a "
               "flu vaccination"))
        vitale_reader = insert("vitale:single", 1, state, ca, pcscd_port)
        cps_reader = insert("cps:pharmacist", 0, state, ca, pcscd_port)
        patient, access_code = pharmacist_creates_a_dmp(sandbox, cps_reader, vitale_reader)

        step(_("2. optician: an eye-test report is deposited, signed by the CPS"))
        cps_reader = insert("cps:optician", 0, state, ca, pcscd_port)
        optician_deposits(sandbox, cps_reader, vitale_reader)

        step(_("3. GP visit: the dossier opens, the report is read; the patient is emailed"))
        cps_reader = insert("cps:gp", 0, state, ca, pcscd_port)
        gp = gp_visit(sandbox, cps_reader, vitale_reader)
        gp_access_emailed(office, gp)

        step(_("4. emergency: a nurse uses break-the-glass, with a justification"))
        cps_reader = insert("cps:nurse", 0, state, ca, pcscd_port)
        break_the_glass(sandbox, cps_reader, vitale_reader)

        step(_("what the operator sees: the access history (`dmp-host patient access-log`)"))
        show_access_log(sandbox, patient)

        step(_("5. at home: the patient signs in to her portal, reads who looked, blocks "
               "the GP"))
        patient_at_home(office, portal, patient.ins, access_code, gp.id_nat_ps,
                        f"{gp.first_name} {gp.last_name}")

        step(_("6. the GP opens the DMP again: refused, and the patient can read it"))
        cps_reader = insert("cps:gp", 0, state, ca, pcscd_port)
        gp_visit(sandbox, cps_reader, vitale_reader)

        # The identity steps first: the agent remembers a patient's qualified identity, and
        # the orthoptist must meet it only récupérée.
        identity_scenarios(sandbox, step, lambda card, slot: insert(
            card, slot, state, ca, pcscd_port), running_agent, first=7)

        step(_("9. orthoptist without a card reader: e-CPS on his phone, the identity "
               "qualified, a deposit signed by the workstation's establishment certificate"))
        with contextlib.redirect_stdout(None):
            vcard.remove(0, state / "cards")  # no CPS in any reader
        orthoptist_with_ecps_deposits(state, config, pki, provider, vitale_reader, report_pdf(
            "Bilan orthoptique", ["Vision binoculaire : normale.",
                                  "Contrôle dans un an."]))

        step(_("10. the agent as people use it: `dmp-agent run`, its local API and page"))
        cps_reader = insert("cps:nurse", 0, state, ca, pcscd_port)
        with running_agent(sandbox) as page:
            if keep is not None:
                say(f"page: {page}")
                say(_("patient portal: {portal} inside the sandbox; from this machine's "
                      "browser: the address `bash scripts/sandbox --keep` prints (its "
                      "relay)").format(portal=portal))
                say(_("identifier {ins}, password « {password} », then the code of the "
                      "newest email in {mail}").format(ins=patient.ins,
                                                      password=SANDBOX_PASSWORD,
                                                      mail=office.directory))
                keep(sandbox)
        for slot in (0, 1):
            with contextlib.redirect_stdout(None):
                vcard.remove(slot, state / "cards")

