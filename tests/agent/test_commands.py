"""The workflow commands as a user runs them: each a `dmp-agent` process (PIN on standard
input), against the real reference host (`dmp-host serve`, its own process) and virtual cards
in the real pcscd. The module plays one counter-to-GP day: a pharmacist creates the DMP (the
secrets sheet), an optician deposits a report, a GP authorised with --confirm lists and saves
it, a nurse reads in break-the-glass; and the refusals a user meets on the way."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config import AgentConfig, write_config
from agent.sandbox.scenarios import REPORT, reference_host
from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PIN, PROFILES
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VirtualCard, VpcdLink, slot_port
from tests.agent.test_secrets_sheet import page_text
from tests.cda_support import report_pdf
from wire import cda

EMERGENCY_TAG = "[BRIS DE GLACE]"  # what every line starts with, in French

pytestmark = pytest.mark.pcsc
BIN = Path(sys.executable).parent
CPS_SLOT, VITALE_SLOT = 0, 1
EYE_TEST = "34810-2"  # an eye-test report: an optician may deposit it


def _agent_command() -> list[str]:
    # `dmp-agent` once agent.cli wires the workflow commands in; until then the same parser
    # run as a module.
    from agent import cli

    if "add_workflow_commands" in Path(cli.__file__).read_text():
        return [str(BIN / "dmp-agent")]
    return [sys.executable, "-m", "agent.views.command_parser"]


@dataclass
class World:
    state: Path
    pki: Path
    env: dict[str, str]
    pcscd_port: int
    config: AgentConfig
    links: dict[int, VpcdLink] = field(default_factory=dict)

    def insert(self, card: VirtualCard, slot: int) -> None:
        """Swap the card in ``slot`` (the previous one is pulled out first)."""
        reader = list_readers()[slot]
        old = self.links.pop(slot, None)
        if old is not None:
            old.stop()
        assert wait_for_card(reader, present=False), f"slot {slot} still holds a card"
        self.links[slot] = VpcdLink(card, slot_port(slot, self.pcscd_port)).start()
        assert wait_for_card(reader, present=True), f"pcscd did not see the card in {slot}"

    def cps(self, profile: str) -> None:
        ca = TestHealthCA.load(self.pki / "health-ca")
        self.insert(VirtualCps.from_profile(profile, ca=ca,
                                            state_dir=self.state / "cards" / profile), CPS_SLOT)

    def vitale(self, profile: str = "single") -> None:
        self.insert(VirtualVitale.from_profile(profile), VITALE_SLOT)

    def run(self, *args: str, pin: str | None = PIN, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [*_agent_command(), *args]
        if pin is not None:
            command.append("--pin-stdin")
        return subprocess.run(command, input=f"{pin}\n" if pin else "", capture_output=True,
                              text=True, env={**self.env, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def world(pcscd, tmp_path_factory) -> Iterator[World]:
    state = tmp_path_factory.mktemp("commands")
    with reference_host(state) as (pki, url, _process):
        config = AgentConfig(host_url=url, host_ca=pki / "server" / "ca.pem",
                             credentials_dir=state / "agent" / "workstation",
                             data_dir=state / "agent" / "data", log_dir=state / "agent" / "log",
                             retry_base=0.1, retry_max=1.0)
        env = {**os.environ, "DMP_AGENT_CONFIG": str(write_config(config,
                                                                   state / "agent.toml"))}
        enrolled = subprocess.run([str(BIN / "dmp-agent"), "enrol", "--from-pki", str(pki)],
                                  capture_output=True, text=True, env=env, timeout=60)
        assert enrolled.returncode == 0, enrolled.stderr
        world = World(state, pki, env, pcscd.port, config)
        world.vitale("single")
        try:
            yield world
        finally:
            for link in world.links.values():
                link.stop()
            time.sleep(0.05)


PATIENT_EMAIL = "claire.martin@example.fr"


def host_rows(world: World, sql: str, *params: object) -> list[tuple[object, ...]]:
    """What the reference host stored (its database, read-only)."""
    database = world.state / "host" / "host.db"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def refused_email(world: World) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """create-dmp with an address the host could not use, before any DMP exists: the
    result, then how many dossiers and contacts the host holds right after."""
    world.cps("pharmacist")
    result = world.run("create-dmp", "--consent", "--email", "claire.martin@localhost",
                       "--sheet", str(world.state / "refused.pdf"))
    ((dossiers,),) = host_rows(world, "SELECT count(*) FROM dossiers")
    ((contacts,),) = host_rows(world, "SELECT count(*) FROM patient_contacts")
    return result, dossiers, contacts


@pytest.fixture(scope="module")
def created(world: World, refused_email) -> tuple[subprocess.CompletedProcess[str], Path]:
    world.cps("pharmacist")
    sheet = world.state / "fiche-secrets.pdf"
    result = world.run("create-dmp", "--consent", "--no-regulation-centre", "--email",
                       f" {PATIENT_EMAIL} ", "--sheet", str(sheet))
    return result, sheet


@pytest.fixture(scope="module")
def deposited(world: World, created) -> subprocess.CompletedProcess[str]:
    assert created[0].returncode == 0, created[0].stderr
    report = world.state / "examen-de-la-vue.pdf"
    report.write_bytes(REPORT)
    world.cps("optician")
    # The optician checked the patient's passport (RNIV: no deposit before qualification).
    checked = world.run("identity", "--document", "passeport")
    assert checked.returncode == 0, checked.stderr
    return world.run("deposit", str(report), "--type", EYE_TEST, "--title", "Bilan visuel")


def ins_of(output: str) -> str:
    found = re.search(r"INS (\d{15})", output)
    assert found, output
    return found.group(1)


def test_create_dmp_writes_the_secrets_sheet_and_keeps_the_code_off_the_screen(
        world: World, created) -> None:
    result, sheet = created
    assert result.returncode == 0, result.stderr
    identifier = re.search(r"identifiant (\S+)", result.stdout)
    assert identifier, result.stdout
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    text = page_text(sheet.read_bytes())
    assert identifier.group(1) in text
    code = re.search(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b", text)
    assert code, text
    assert code.group(0) not in result.stdout + result.stderr  # only on paper
    for log in sheet.parent.rglob("*.log"):
        assert code.group(0) not in log.read_text(errors="replace")
    assert "NON (refusé)" in text  # the regulation centre the patient refused
    assert "CLAIRE" in text and "MARTIN" in text
    # The patient's address (trimmed) reached the host, for the notifications and the
    # portal's sign-in codes, and is on the sheet with how the first sign-in works.
    assert host_rows(world, "SELECT email, channel FROM patient_contacts "
                     "WHERE ins = ?", ins_of(result.stdout)) == [(PATIENT_EMAIL, "email")]
    assert PATIENT_EMAIL in text and "Première connexion à votre espace patient" in text
    assert PATIENT_EMAIL in result.stdout


def test_create_dmp_with_a_bad_email_is_a_usage_error_and_creates_nothing(
        refused_email) -> None:
    result, dossiers, contacts = refused_email
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Adresse électronique du patient" in result.stderr
    assert "claire.martin@localhost" not in result.stderr
    assert "Patient :" not in result.stdout  # refused before any card was read
    assert (dossiers, contacts) == (0, 0)


def test_create_dmp_without_consent_is_a_usage_error(world: World) -> None:
    result = world.run("create-dmp", "--sheet", str(world.state / "x.pdf"), pin=None)
    assert result.returncode == 2
    assert "--consent" in result.stderr
    assert not (world.state / "x.pdf").exists()


def test_the_optician_deposits_a_report_through_the_outbox(world: World, deposited) -> None:
    assert deposited.returncode == 0, deposited.stdout + deposited.stderr
    assert "Déposé : Bilan visuel" in deposited.stdout
    outbox = world.run("outbox", pin=None)
    assert outbox.returncode == 0, outbox.stderr
    assert "File d'envoi : 0 en attente, 0 refusé(s), 1 déposé(s)" in outbox.stdout
    types = world.run("deposit", "--list-types", pin=None)  # the identity needs no PIN
    assert types.returncode == 0 and EYE_TEST in types.stdout


def test_authorize_is_refused_without_confirm(world: World) -> None:
    result = world.run("authorize", pin=None)
    assert result.returncode == 2
    assert "--confirm" in result.stderr


def test_the_gp_authorised_with_confirm_lists_and_saves_the_report(
        world: World, deposited, tmp_path: Path) -> None:
    assert deposited.returncode == 0
    world.cps("gp")
    before = world.run("patient")
    assert before.returncode == 0, before.stderr
    assert "DMP : open" in before.stdout
    authorized = world.run("authorize", "--confirm")
    assert authorized.returncode == 0, authorized.stderr
    assert "Autorisation enregistrée" in authorized.stdout
    after = world.run("patient")
    assert "Autorisation : valid" in after.stdout
    listed = world.run("documents", "--type", EYE_TEST, "--save", str(tmp_path / "docs"))
    assert listed.returncode == 0, listed.stderr
    assert "1 document(s)" in listed.stdout and "Bilan visuel" in listed.stdout
    saved = list((tmp_path / "docs").iterdir())
    # The deposit is a CDA R2 level 1 document around the report made PDF/A (docs/cda.md).
    assert len(saved) == 1 and saved[0].suffix == ".xml"
    assert cda.read(saved[0].read_bytes()).header.title == "Bilan visuel"
    assert stat.S_IMODE(saved[0].stat().st_mode) == 0o600


def test_a_wrong_pin_says_the_tries_left_and_a_script_keeps_the_last_one(world: World) -> None:
    world.cps("orthoptist")
    first = world.run("patient", pin="0000")
    assert first.returncode == 1
    assert "Code porteur erroné : 2 essai(s) restant(s)" in first.stderr
    assert "tries left" not in first.stderr  # one language
    second = world.run("patient", pin="0000")
    assert "1 essai(s) restant(s)" in second.stderr  # one try per run, not three
    # The last try is never spent from a script, not even with the right PIN.
    last = world.run("patient")
    assert last.returncode == 1 and "sans --pin-stdin" in last.stderr
    cards = subprocess.run([str(BIN / "dmp-agent"), "cards"], capture_output=True,
                           text=True, env=world.env, timeout=60)
    assert "essais PIN restants : 1" in cards.stdout, cards.stdout


def test_break_the_glass_is_shown_on_every_line(world: World, deposited) -> None:
    world.cps("nurse")
    result = world.run("emergency", "--justification",
                       "Patiente inconsciente aux urgences, pronostic vital engagé", "documents")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 3 and all(line.startswith(EMERGENCY_TAG) for line in lines)
    assert "17/05/1984" in result.stdout
    log = subprocess.run(
        [str(BIN / "dmp-host"), "patient", "access-log", ins_of(result.stdout), "--database",
         f"sqlite:///{world.state / 'host' / 'host.db'}"],
        capture_output=True, text=True, timeout=60)
    emergency = [line for line in log.stdout.splitlines() if "bris_de_glace" in line.lower()]
    assert emergency and all("Patiente inconsciente" in line for line in emergency), log.stdout


def test_only_a_regulation_centre_is_offered_centre_15(world: World, deposited) -> None:
    # A GP in a practice: refused by the agent before anything is sent (issue 16, hole 1).
    world.cps("gp")
    result = world.run("regulation", "documents")
    assert result.returncode == 1 and "regulation-centre-only" in result.stderr, result.stderr


def test_regulation_centre_access_honours_the_patients_opt_out(world: World, deposited) -> None:
    # The DMP of this world was created with --no-regulation-centre: refused, and traced.
    world.cps("regulation")
    result = world.run("regulation", "documents")
    assert result.returncode == 1 and "centre-15-opted-out" in result.stderr, result.stderr
    ins = world.run("patient").stdout.split("INS ")[1].split()[0]
    log = subprocess.run(
        [str(BIN / "dmp-host"), "patient", "access-log", ins, "--database",
         f"sqlite:///{world.state / 'host' / 'host.db'}"],
        capture_output=True, text=True, timeout=60)
    traced = [line for line in log.stdout.splitlines() if "centre_15" in line.lower()]
    assert traced and all("refused" in line for line in traced), log.stdout


def test_a_card_with_several_persons_lists_them_and_asks_to_choose(world: World) -> None:
    world.vitale("family")
    try:
        result = world.run("patient", pin=None)
    finally:
        world.vitale("single")
    assert result.returncode == 2
    assert "1. THOMAS DURAND" in result.stderr and "3. LÉA DURAND" in result.stderr
    assert "--person" in result.stderr


def _unique_id(output: str) -> str:
    # A deposit's uniqueId is its CDA id: urn:oid:2.25.<uuid as an integer> (docs/cda.md).
    found = re.search(r"(urn:(?:uuid:[0-9a-f-]{36}|oid:[0-9.]+[0-9]))", output)
    assert found, output
    return found.group(1)


def test_the_author_masks_replaces_and_deletes_by_unique_id(world: World, deposited) -> None:
    first, second = world.state / "v1.pdf", world.state / "v2.pdf"
    first.write_bytes(report_pdf("bilan v1"))
    second.write_bytes(report_pdf("bilan v2"))
    world.cps("optician")
    old = _unique_id(world.run("deposit", str(first), "--type", EYE_TEST, "--title",
                               "Bilan v1").stdout)
    masked = world.run("mask", old)
    assert masked.returncode == 0, masked.stderr
    assert "[masqué]" in world.run("documents").stdout
    assert world.run("unmask", old).returncode == 0
    replaced = world.run("replace", old, str(second), "--title", "Bilan v2")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    new = _unique_id(replaced.stdout)
    listed = world.run("documents").stdout
    assert new in listed and old not in listed  # the old version left the current set
    assert "masqué/masked" not in listed  # unmasked, and the new version inherits that
    assert world.run("hide-from-patient", new).returncode == 0
    shown = world.run("documents").stdout
    assert re.search(rf"invisible patient\]\n  {re.escape(new)}", shown), shown
    assert world.run("archive", new).returncode == 0
    assert new not in world.run("documents").stdout
    archived = world.run("documents", "--archived").stdout
    assert re.search(rf"archivé\]\n  {re.escape(new)}", archived), archived
    deleted = world.run("delete", new)
    assert deleted.returncode == 0, deleted.stderr
    assert new not in world.run("documents", "--archived").stdout


def test_only_the_author_may_delete(world: World, deposited) -> None:
    world.cps("optician")
    report = _unique_id(world.run("documents", "--type", EYE_TEST).stdout)
    world.cps("gp")
    refused = world.run("delete", report)
    assert refused.returncode == 1
    assert "Refus de l'hôte DMP (HTTP 403)" in refused.stderr
    # The host's refusal in the agent's words, one language at a time (issue 17): French by
    # default, English by the locale; never the host's "français / English" sentence.
    assert "Seul l'auteur du document peut faire cela." in refused.stderr
    assert " / " not in refused.stderr
    english = world.run("delete", report, env={"LANGUAGE": "", "LANG": "en_US.UTF-8"})
    assert english.returncode == 1
    assert "Only the document's author may do this." in english.stderr
    assert "Seul" not in english.stderr and " / " not in english.stderr
    assert report in world.run("documents").stdout


def test_an_unreachable_host_is_named_as_such(world: World) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    away = write_config(dataclasses.replace(world.config, host_url=f"https://127.0.0.1:{port}"),
                        world.state / "away.toml")
    world.cps("gp")
    result = world.run("patient", env={"DMP_AGENT_CONFIG": str(away)})
    assert result.returncode == 1
    assert "Hôte DMP injoignable" in result.stderr and "Traceback" not in result.stderr


def test_without_a_cps_the_command_says_the_card_is_missing(world: World) -> None:
    old = world.links.pop(CPS_SLOT, None)
    if old is not None:
        old.stop()
    assert wait_for_card(list_readers()[CPS_SLOT], present=False)
    result = world.run("patient")
    assert result.returncode == 1
    assert "CPS" in result.stderr and "absente des lecteurs" in result.stderr


def test_watch_opens_the_dossier_of_each_card_and_clears_it_on_removal(
    world: World, deposited
) -> None:
    import signal
    import time

    world.cps("gp")
    world.vitale("single")
    watch = subprocess.Popen([*_agent_command(), "watch", "--pin-stdin"], env=world.env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert watch.stdin is not None and watch.stdout is not None
    watch.stdin.write(f"{PIN}\n")
    watch.stdin.close()
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("DMP :" in line for line in lines):
        lines.append(watch.stdout.readline())
    assert any("Patient :" in line for line in lines), lines
    world.vitale("family")  # the next patient: the old dossier goes first
    while time.monotonic() < deadline and not any("effacé" in line or "retirée" in line
                                                  for line in lines):
        lines.append(watch.stdout.readline())
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(timeout=20) == 0, watch.stderr.read() if watch.stderr else ""
    assert any("retirée" in line or "effacé" in line for line in lines), lines


HOSTILE_TITLE = "Bilan\x1b]0;pwn\x07\x1b[2J\r\nFAUX\x00 ../../../../tmp/evil"


def test_a_hostile_title_is_listed_escaped_and_a_hostile_type_saved_as_bin(
    world: World, deposited, tmp_path: Path
) -> None:
    # The optician's report as a hostile or careless host could serve it (a host that did
    # not check, or documents stored before it did): title and MIME type set in its database.
    assert deposited.returncode == 0
    database = world.state / "host" / "host.db"
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        unique_id, title, mime, resource = db.execute(
            "SELECT unique_id, title, mime_type, resource FROM documents "
            "WHERE title = 'Bilan visuel'").fetchone()
        db.execute("UPDATE documents SET title = ?, mime_type = 'application/hta', "
                   "resource = json_set(resource, '$.content[0].attachment.title', ?, "
                   "'$.content[0].attachment.contentType', 'application/hta') "
                   "WHERE unique_id = ?", (HOSTILE_TITLE, HOSTILE_TITLE, unique_id))
    try:
        world.cps("gp")
        world.vitale("single")
        folder = tmp_path / "saved"
        listed = world.run("documents", "--type", EYE_TEST, "--save", str(folder))
        again = world.run("documents", "--type", EYE_TEST, "--save", str(folder))
    finally:
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute("UPDATE documents SET title = ?, mime_type = ?, resource = ? "
                       "WHERE unique_id = ?", (title, mime, resource, unique_id))
    assert listed.returncode == 0, listed.stderr
    assert "Bilan\\x1b]0;pwn\\x07\\x1b[2J\\x0d\\x0aFAUX\\x00 ../../../../tmp/evil" in listed.stdout
    for raw in ("\x1b", "\x07", "\x00", "\r"):
        assert raw not in listed.stdout + listed.stderr
    assert not any(line.startswith("FAUX") for line in listed.stdout.splitlines())
    # Saved inside the folder, under a plain name, with no extension the depositor chose.
    saved = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.parent == Path("saved") for p in saved), saved
    hostile = [p for p in saved if "pwn" in p.name]
    assert [p.suffix for p in hostile] == [".bin", ".bin"], saved  # the second run: -2
    assert not any(p.suffix == ".hta" for p in saved)
    assert cda.read((tmp_path / hostile[0]).read_bytes()).header.title == "Bilan visuel"
    assert all(stat.S_IMODE((tmp_path / p).stat().st_mode) == 0o600 for p in saved)
    # The second run kept every file of the first and wrote its own beside them.
    assert again.returncode == 0, again.stderr
    firsts = [p for p in saved if not p.stem.endswith("-2")]
    assert sorted(saved) == sorted([*firsts, *(p.with_stem(p.stem + "-2") for p in firsts)])


def test_the_author_shows_a_hidden_document_to_the_patient_again(world: World, deposited) -> None:
    report = world.state / "annonce.pdf"
    report.write_bytes(report_pdf("résultat à annoncer"))
    world.vitale("single")  # the patient of the dossier created above
    world.cps("optician")
    unique_id = _unique_id(world.run("deposit", str(report), "--type", EYE_TEST, "--title",
                                     "A annoncer", "--invisible-to-patient").stdout)
    assert re.search(rf"invisible patient\]\n  {re.escape(unique_id)}",
                     world.run("documents").stdout)
    shown = world.run("show-to-patient", unique_id)
    assert shown.returncode == 0, shown.stderr
    assert "Visible par le patient" in shown.stdout
    listed = world.run("documents").stdout
    assert unique_id in listed
    assert not re.search(rf"invisible patient\]\n  {re.escape(unique_id)}", listed), listed


def test_the_gp_is_designated_then_the_dmp_closed_and_reopened_at_the_patients_request(
        world: World, deposited) -> None:
    world.vitale("single")
    world.cps("gp")
    assert world.run("medecin-traitant", pin=None).returncode == 2  # --confirm missing
    designated = world.run("medecin-traitant", "--confirm")
    assert designated.returncode == 0, designated.stderr
    assert "Médecin traitant DMP : oui" in world.run("patient").stdout

    refused = world.run("close-dmp", "--reason", "ne souhaite plus de DMP", pin=None)
    assert refused.returncode == 2 and "--patient-request" in refused.stderr
    closed = world.run("close-dmp", "--patient-request", "--reason", "ne souhaite plus de DMP")
    assert closed.returncode == 0, closed.stderr
    assert "reactivate-dmp" in closed.stdout
    state = world.run("patient")
    assert "DMP : closed" in state.stdout, state.stdout
    assert world.run("documents").returncode == 1  # a closed DMP serves nothing

    assert world.run("reactivate-dmp", pin=None).returncode == 2  # --consent missing
    reopened = world.run("reactivate-dmp", "--consent")
    assert reopened.returncode == 0, reopened.stderr
    assert "DMP : open" in world.run("patient").stdout


def test_a_card_with_two_practice_situations_says_which_one_is_used(world: World) -> None:
    world.vitale("single")
    world.cps("gp")
    first = world.run("patient")
    assert first.returncode == 0, first.stderr
    assert "la carte en porte 2" in first.stderr and "--situation" in first.stderr
    second = world.run("patient", "--situation", "2")
    assert second.returncode == 0, second.stderr
    structures = [s.structure_id for s in PROFILES["gp"].situations]
    assert f"({structures[0]})" in first.stderr and f"({structures[1]})" in second.stderr
    wrong = world.run("patient", "--situation", "9999999999")
    assert wrong.returncode == 2 and "pas sur la carte" in wrong.stderr, wrong.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(world: World) -> None:
    # `dmp-agent documents | head`: the pipe closes before the list is written.
    world.vitale("single")
    world.cps("optician")
    command = [*_agent_command(), "documents", "--pin-stdin"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=world.env)
    assert process.stdin is not None and process.stdout is not None
    process.stdout.close()
    _out, err = process.communicate(f"{PIN}\n".encode(), timeout=60)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_a_deposit_waits_for_the_identity_check_and_several_identities_for_a_choice(
        world: World, deposited) -> None:
    report = world.state / "cr-identite.pdf"
    report.write_bytes(REPORT)
    world.cps("gp")
    world.vitale("corrected")
    try:
        before = world.run("patient")
        assert before.returncode == 0, before.stderr
        assert "Identité : récupérée" in before.stdout
        assert "dmp-agent identity --document" in before.stdout
        refused = world.run("deposit", str(report), "--type", "11488-4")
        assert refused.returncode == 1 and "non qualifiée" in refused.stderr
        assert "Signé" not in refused.stdout  # refused before anything was signed or queued
        wrong = world.run("identity", "--document", "permis", pin=None)
        assert wrong.returncode == 2
        checked = world.run("identity", "--document", "carte-identite")
        assert checked.returncode == 0, checked.stderr
        assert "qualifiée" in checked.stdout and "Carte nationale d'identité" in checked.stdout
        # Kept for the next command (another process): no check asked again.
        again = world.run("patient")
        assert "Identité : qualifiée" in again.stdout
        world.vitale("homonym")
        several = world.run("patient")
        assert several.returncode == 2
        assert "99134" in several.stderr and "33063" in several.stderr
        assert "--identity N" in several.stderr
        chosen = world.run("patient", "--identity", "2")
        assert chosen.returncode == 0, chosen.stderr
        assert "récupérée" in chosen.stdout
    finally:
        world.vitale("single")
    # With no card at all: typed traits; homonyms listed, then the one the user names.
    traits = ("--birth-name", "MOREL", "--first-names", "PIERRE", "--sex", "M",
              "--birth-date", "19650704")
    bad = world.run("find-patient", *traits[:-1], "1965-07-04", pin=None)
    assert bad.returncode == 2 and "AAAAMMJJ" in bad.stderr
    homonyms = world.run("find-patient", *traits)
    assert homonyms.returncode == 2 and homonyms.stderr.count("INS 1650775115") == 2
    found = world.run("find-patient", *traits, "--identity", "1")
    assert found.returncode == 0, found.stderr
    assert "INS 165077511510131" in found.stdout and "récupérée" in found.stdout
