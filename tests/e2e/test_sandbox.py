"""The README's first command, as a user runs it: `dmp-agent sandbox` plays the scenarios
end to end (host process, pcscd, virtual cards, agent), asserted on what the host stored and
logged, and on what a run leaves behind (nothing running, no PIN, no INS in the logs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.cda_support import children_with_cisis
from wire import cda

pytestmark = pytest.mark.pcsc
BIN = Path(sys.executable).parent
# With the CI-SIS files the sandbox gets them (full checks, and the GP deposits the structured
# examples); without them it runs in the optional mode, as in CI.
CISIS = cda.cisis_state().installed


@pytest.fixture(scope="module")
def run(pcscd, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    state = tmp_path_factory.mktemp("sandbox")
    pcscd.stop()  # the sandbox starts its own
    try:
        with children_with_cisis():
            result = subprocess.run([str(BIN / "dmp-agent"), "sandbox", "--state-dir",
                                     str(state)], capture_output=True, text=True, timeout=300)
    finally:
        pcscd.start()
    return result, state


def _db(state: Path):
    return create_engine(f"sqlite:///{state / 'host' / 'host.db'}")


def test_the_sandbox_runs_to_the_end(run) -> None:
    result, _ = run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # In French, the default (the sandbox speaks through the catalogue, issue 17).
    for step in ("1. comptoir de la pharmacie", "vaccination : VAXIGRIPTETRA, lot SBX2026A",
                 "2. opticien", "3. consultation chez le médecin", "4. urgence",
                 "5. à la maison", "6. le médecin rouvre le DMP",
                 "*** REFUSÉ", "7. orthoptiste", "8. homonymes",
                 "9. orthoptiste sans lecteur de carte", "session ouverte avec l'e-CPS",
                 "10. l'agent tel qu'on l'utilise", "POST /api/session : ouverte",
                 "GET /api/status : patient ready", "bac à sable terminé"):
        assert step in result.stdout
    assert "PassReport(" not in result.stdout  # no Python repr reaches the narration


def test_the_gp_deposits_the_structured_examples_and_they_fill_the_summary(run) -> None:
    """With the CI-SIS files, step 3 deposits the VSM, the CR-BIO and the vaccination note
    (each checked against its volet) and reads the summary back from them; without them it
    says why it deposits none."""
    result, _ = run
    visit = result.stdout[result.stdout.index("3. consultation"):
                          result.stdout.index("4. urgence")]
    if not CISIS:
        assert "non déposés : les fichiers CI-SIS sont absents" in visit
        return
    for volet in ("CDA VSM", "CDA CR-BIO", "CDA VAC-NOTE"):
        assert volet in visit
    assert "REFUSÉ" not in visit
    out = result.stdout
    # The counter's and the shop's own structured documents, at steps 1 and 2.
    assert "CDA BIO-TROD" in out[out.index("1. comptoir"):out.index("2. opticien")]
    assert "CDA OPH-BRE" in out[out.index("2. opticien"):out.index("3. consultation")]
    for section in ("Traitements en cours", "Vaccinations", "Résultats de biologie"):
        assert f"résumé — {section} :" in visit


def test_the_patient_was_emailed_signed_in_and_blocked_the_gp(run) -> None:
    """Issue 14's scenario: the GP's first access emailed to the patient, her sign-in on the
    portal with the emailed code, her block, and the GP refused afterwards."""
    import email
    import email.policy

    from tests.host.harness import GP

    _, state = run
    mail = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted((state / "mail").glob("*.eml"))]
    subjects = [str(message["Subject"]) for message in mail]
    assert "Votre DMP a été créé" in subjects
    assert any("code de connexion" in subject for subject in subjects)
    first_access = [m for m in mail if "nouveau professionnel" in str(m["Subject"])]
    assert any(GP.last_name in m.get_body().get_content() for m in first_access)
    assert {str(m["To"]) for m in mail} == {"claire.martin@example.org"}
    with _db(state).connect() as connection:
        log = connection.execute(text(
            "select actor_kind, actor_id, action, outcome, reason from access_log "
            "order by seq")).all()
        blocked = connection.execute(text(
            "select blocked from authorizations where id_nat_ps = :gp"),
            {"gp": GP.id_nat_ps}).scalar_one()
    assert blocked
    patient_actions = [(r.action, r.outcome) for r in log if r.actor_kind == "patient"]
    assert ("portal_sign_in", "allowed") in patient_actions
    assert ("block", "allowed") in patient_actions
    after_block = [r for r in log[[r.action for r in log].index("block"):]
                   if r.actor_id == GP.id_nat_ps]
    assert after_block and {(r.outcome, r.reason) for r in after_block
                            if r.action != "resolve_identity"} == {("refused", "BLOCKED")}


def test_the_host_stored_the_dmp_the_report_and_the_traces(run) -> None:
    _, state = run
    with _db(state).connect() as connection:
        dossiers = connection.execute(text("select ins, status from dossiers")).all()
        assert [row.status for row in dossiers] == ["open"]
        ins = dossiers[0].ins
        types = sorted(r.type_code for r in connection.execute(
            text("select type_code from documents where ins = :ins"), {"ins": ins}))
        # Each document and its signed submission set: the pharmacist's vaccination note, the
        # optician's report by the CPS, the orthoptist's assessments by his CPS then under
        # e-CPS; with the CI-SIS files, the pharmacist's rapid test (BIO-TROD), the
        # optician's refraction report (OPH-BRE, J07's 78513-9 read as 34807-8), the GP's lab
        # report (CR-BIO), medical summary (VSM) and vaccination note too.
        structured = (["96173-0", "34807-8", "11502-2", "60591-5", "87273-9"] if CISIS
                      else [])
        assert types == sorted(["34810-2", "87273-9", "BILAN-ORTHOPTIQUE", "BILAN-ORTHOPTIQUE",
                                *structured, *["E1762"] * (4 + len(structured))])
        log = connection.execute(text(
            "select action, mode, outcome, justification, profession from access_log "
            "where ins = :ins"), {"ins": ins}).all()
        actions = {(r.action, r.profession, r.outcome) for r in log}
        assert ("create", "21", "allowed") in actions
        assert ("deposit", "21", "allowed") in actions  # the flu vaccination
        assert ("deposit", "28", "allowed") in actions
        assert ("deposit", "92", "allowed") in actions
        assert ("read", "10", "allowed") in actions
        emergency = [r for r in log if r.mode == "bris_de_glace"]
        assert emergency and all(r.justification for r in emergency)
        kinds = {r.kind for r in connection.execute(
            text("select kind from notifications where ins = :ins"), {"ins": ins})}
        assert {"new-document", "emergency-access"} <= kinds


def test_every_deposit_carries_the_qualified_identity_and_homonyms_wait(run) -> None:
    """Issue 13 (docs/ins.md): the optician's scripted deposit and the orthoptist's through
    `dmp-agent run` carry the INS service's identity, qualified with the passport; the
    agent refused the orthoptist's deposit before the check, and waited for the user's
    choice between two identities."""
    import json

    from wire.ins import reliability_of

    result, state = run
    with _db(state).connect() as connection:
        sets = [json.loads(r[0]) for r in connection.execute(
            text("select resource from submission_sets where ins = '284057511402396'"))]
    patients = [c for s in sets for c in s.get("contained", ())
                if c.get("resourceType") == "Patient"]
    reliabilities = [reliability_of(p) for p in patients]
    # The pharmacist's vaccination note, the optician's, the orthoptist's by his CPS and
    # under e-CPS; with the CI-SIS files, the pharmacist's rapid test, the optician's
    # refraction report and the GP's three structured documents too.
    assert len(sets) == len(reliabilities) == (9 if CISIS else 4)
    assert all(r is not None and r.qualified and r.document == "passeport"
               for r in reliabilities)
    out = result.stdout
    refused = out.index("REFUSÉ par l'agent (identity-not-qualified)")
    assert refused < out.index("identité qualifiée (Passeport")
    homonyms = out[out.index("8. homonymes"):out.index("9. orthoptiste")]
    assert "2 identités" in homonyms and "l'agent attend le choix" in homonyms
    assert "172083306312348" in homonyms and "172089913404594" in homonyms
    assert "REFUSÉ (409" in homonyms


def test_the_gp_got_the_very_bytes_the_optician_deposited(run) -> None:
    _, state = run
    from agent.core import pdfa
    from wire import cda
    from wire.cda.header import non_xml_body

    # The optician's report as deposited: a CDA R2 level 1 around the report made PDF/A.
    document = cda.read((state / "document.xml").read_bytes())
    assert document.volet.name == "CDA-R2-N1"
    media_type, body = non_xml_body(document.root, max_bytes=20_000_000)
    assert media_type == "application/pdf" and pdfa.is_pdfa(body)


def test_outbox_is_empty_and_nothing_is_left_running(run) -> None:
    _, state = run
    outbox = state / "agent" / "data" / "outbox" / "outbox.sqlite3"
    with create_engine(f"sqlite:///{outbox}").connect() as connection:
        states = [r[0] for r in connection.execute(text("select state from items"))]
    # The pharmacist's vaccination note, the optician's, the orthoptist's by his CPS (the
    # e-CPS one left from his laptop's own outbox, which the next lines find empty too); with
    # the CI-SIS files, the pharmacist's rapid test, the optician's refraction report and
    # the GP's three examples too.
    assert states == ["done"] * (8 if CISIS else 3)
    laptop = state / "agent" / "laptop" / "data" / "outbox" / "outbox.sqlite3"
    with create_engine(f"sqlite:///{laptop}").connect() as connection:
        assert [r[0] for r in connection.execute(text("select state from items"))] == ["done"]
    leftovers = subprocess.run(["pgrep", "-f", f"{state}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_no_pin_and_no_patient_identity_in_the_logs(run) -> None:
    import re

    from cardreader.virtual.vitale_profiles import PROFILES

    _, state = run
    with _db(state).connect() as connection:
        ins = connection.execute(text("select ins from dossiers")).scalar_one()
    agent_log = state / "agent" / "log" / "agent.log"
    assert "session opened" in agent_log.read_text()  # the agent does log its work
    assert oct(agent_log.stat().st_mode)[-3:] == "600"
    holder = PROFILES["single"].holder
    secrets = [ins, ins[:13], PROFILES["single"].nir, holder.birth_date.raw]
    for path in state.rglob("*.log"):
        content = path.read_text(errors="replace")
        assert not re.search(r"(?<![0-9])1234(?![0-9])", content), f"PIN-like token in {path}"
        for secret in secrets:
            assert secret not in content, f"patient identity in {path}"
