"""The retention job, with a clock the test controls: a DMP closed ten years ago is purged
(rows and unshared bodies), a reactivated one is untouched; idempotent; dry run changes
nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select, update

from host import patient, retention
from host.blobs import BlobStore
from host.store.schema import DOSSIER_TABLES, documents, dossiers
from tests.host.harness import PHARMACIST, InProcessHost

CLAIRE = "284057511402396"
PAUL = "179116912304566"
TEN_YEARS = patient.DEFAULT_RETENTION


def rows_of(host: InProcessHost, ins: str) -> int:
    with host.app.state.engine.connect() as connection:
        return sum(connection.execute(select(func.count()).select_from(t)
                                      .where(t.c.ins == ins)).scalar_one()
                   for t in DOSSIER_TABLES)


def test_retention_purges_only_what_ended(db_url: str, tmp_path: Path) -> None:
    host = InProcessHost(db_url, tmp_path)
    guard, engine = host.app.state.guard, host.app.state.engine
    blobs = BlobStore(tmp_path / "blobs")
    body = blobs.put_bytes(b"claire's report", 1000).sha256
    for ins in (CLAIRE, PAUL):
        assert host.client(PHARMACIST).post(f"/dossiers/{ins}",
                                            json={"consent": True}).status_code == 201
        patient.close(guard, ins, "décès")
    with engine.begin() as connection:  # a document row pointing at the body (only Claire's)
        connection.execute(update(dossiers).values(closed_at=host.clock()))
    _add_document(engine, CLAIRE, body)
    host.clock.advance(days=TEN_YEARS.days - 1)
    patient.reactivate(guard, PAUL)  # the day before his retention ends
    host.clock.advance(days=2)

    before = rows_of(host, CLAIRE)
    dry = retention.run(engine, host.clock(), dry_run=True, blobs=blobs)
    assert dry["dossiers"] == 1 and dry["blobs"] == 1 and sum(dry.values()) == before + 1
    assert rows_of(host, CLAIRE) == before and blobs.exists(body)  # dry run: nothing gone

    assert retention.run(engine, host.clock(), dry_run=False, blobs=blobs) == dry
    assert rows_of(host, CLAIRE) == 0 and not blobs.exists(body)
    paul = rows_of(host, PAUL)
    assert paul > 0 and patient.authorizations(guard, PAUL)  # untouched, served again
    again = retention.run(engine, host.clock(), dry_run=False, blobs=blobs)
    assert set(again.values()) == {0}  # idempotent
    assert rows_of(host, PAUL) == paul + 1  # only the authorizations read above was added


def test_a_dossier_inside_its_retention_is_kept(db_url: str, tmp_path: Path) -> None:
    host = InProcessHost(db_url, tmp_path)
    guard, engine = host.app.state.guard, host.app.state.engine
    assert host.client(PHARMACIST).post(f"/dossiers/{CLAIRE}",
                                        json={"consent": True}).status_code == 201
    patient.close(guard, CLAIRE, "demande")
    host.clock.advance(days=TEN_YEARS.days - 1)
    counts = retention.run(engine, host.clock(), dry_run=False)
    assert set(counts.values()) == {0} and rows_of(host, CLAIRE) > 0


def _add_document(engine, ins: str, sha256: str) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(documents.insert().values(
            ins=ins, id="doc-1", unique_id="urn:uuid:1", status="current", class_code="10",
            type_code="34810-2", format_code="pdf", mime_type="application/pdf",
            author_id="810001234565", deposited_at=now, size=15, sha256=sha256,
            sha1_b64="x" * 28, submission_set_id="s-1", resource={}))
