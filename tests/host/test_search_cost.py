"""What one search costs the store: a fixed number of statements whatever the page holds
(the session, the dossier's state, the page, the access-log entry), each search traced once
in a whole hash chain, and the rows keyed for decisions as `records.decision_key` keys them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event

from host.access_chain import verify
from host.documents import records
from host.documents import search as search_module
from host.store.schema import access_log
from tests.host.documents_support import PATIENT, authorize, open_dossier
from tests.host.harness import GP, InProcessHost

CLAIRE = "284057511402396"


def test_the_decision_key_reads_what_records_decides_on() -> None:
    selected = [column.name for column in search_module._SELECTED]
    keyed = set(selected[search_module._KEY_COLUMNS])
    assert keyed == {"status", "class_code", "type_code", "author_id", "archived", "masked",
                     "invisible_to_patient", "visible_to_patient_from",
                     "invisible_to_legal_reps", "confidentiality"}
    assert selected[search_module._DEPOSITED] == "deposited_at"
    assert selected[search_module._INVISIBLE_TO_PATIENT] == "invisible_to_patient"
    # records.decision_key reads the same columns (by name).
    seen: set[str] = set()

    class Spy:
        def __getattr__(self, name: str) -> object:
            seen.add(name)
            return True

    records.decision_key(Spy())  # type: ignore[arg-type]
    assert seen == keyed | {"deposited_at"}


def test_a_search_is_a_fixed_number_of_statements_and_one_traced_access(
        db_url: str, tmp_path: Path) -> None:
    host = InProcessHost(db_url, tmp_path)
    open_dossier(host)
    authorize(host, GP)
    engine = host.app.state.engine
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    url = f"/fhir/DocumentReference?patient=Patient/{PATIENT.ins}&status=current"
    gp = host.client(GP)
    # The professional's first access to the dossier is recorded (the patient is told,
    # issue 14): it costs its own statements once; every later search is what is counted.
    assert gp.get(url).status_code == 200
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert gp.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # session, dossier state, page; the log entry: one statement (PostgreSQL) or two.
    trace = ["WITH"] if engine.dialect.name == "postgresql" else ["INSERT", "INSERT"]
    assert statements == ["SELECT", "SELECT", "SELECT", *trace]
    # A search refused for the whole dossier (closed) is traced on the same connection too.
    open_dossier(host, CLAIRE, status="closed")
    assert gp.get(url.replace(PATIENT.ins, CLAIRE)).status_code == 403
    with engine.connect() as connection:
        for ins, outcome in ((PATIENT.ins, "allowed"), (CLAIRE, "refused")):
            outcomes = [row.outcome for row in connection.execute(
                access_log.select().where(access_log.c.ins == ins))]
            assert outcomes == [outcome] * (2 if outcome == "allowed" else 1)
            assert verify(connection, ins).whole
