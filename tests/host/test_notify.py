"""The notification service (issue 14): events, the patient's contact and channel, the SMTP
sender (a real aiosmtpd server), retries with backoff, and at-most-once across kill -9."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from host import notify, notify_events, patient
from host.cli import main
from host.mailbox import SmtpServer, free_port
from host.settings import NotifySettings
from host.store.schema import notifications
from tests.host.harness import GP, NURSE, PHARMACIST, REGULATOR, InProcessHost

CLAIRE = "284057511402396"
BASE = f"/dossiers/{CLAIRE}"
ADDRESS = "claire.martin@example.org"
ROOT = Path(__file__).resolve().parents[2]
BTG = {"x-dmp-access-mode": "bris_de_glace",
       "x-dmp-justification": "arr%C3%AAt%20cardiaque%20sur%20infarctus"}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def settings(url: str, **changes: Any) -> NotifySettings:
    return NotifySettings(smtp_url=url, sender="DMP <dmp@example.test>", interval=0.1,
                          timeout=5, **changes)


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    h = InProcessHost(db_url, tmp_path)
    created = h.client(PHARMACIST).post(BASE, json={"consent": True,
                                                    "contact": {"email": ADDRESS}})
    assert created.status_code == 201, created.text
    return h


def rows(host: InProcessHost) -> list[Any]:
    with host.app.state.engine.connect() as connection:
        return list(connection.execute(select(notifications).where(
            notifications.c.ins == CLAIRE).order_by(notifications.c.created_at,
                                                    notifications.c.id)).all())


def drain(host: InProcessHost, url: str, **changes: Any) -> notify.Counts:
    return notify.Sender(host.app.state.engine, settings(url, **changes),
                         clock=host.clock).run(once=True)


def body_of(message: email.message.EmailMessage) -> str:
    return message.get_body().get_content()  # type: ignore[union-attr]


def test_an_emergency_access_emails_the_patient_once(host: InProcessHost,
                                                     smtp: SmtpServer) -> None:
    assert drain(host, smtp.url).sent == 1  # the creation
    [(to, created)] = smtp.mailbox.received
    assert to == [ADDRESS] and created["Subject"] == "Votre DMP a été créé"
    host.clock.advance(minutes=30)
    assert host.client(GP, **BTG).get(BASE).status_code == 200
    counts = drain(host, smtp.url)
    assert (counts.sent, counts.retried, counts.uncertain) == (1, 0, 0)
    assert drain(host, smtp.url).sent == 0  # nothing is sent twice
    assert len(smtp.mailbox.received) == 2
    to, message = smtp.mailbox.received[1]
    text = body_of(message)
    assert to == [ADDRESS] and message["Subject"] == "Accès en urgence à votre DMP"
    # who, when (Paris time: 09:30 UTC is 10:30 in November), what kind of access
    assert "Claire MARTIN (médecin)" in text and GP.structure_id in text
    assert "le 27/11/2026 à 10:30 (heure de Paris)" in text
    assert "bris de glace" in text and "English:" in text
    assert "Motif enregistré, consultable dans votre historique." in text
    assert "cardiaque" not in text and "infarctus" not in text  # the justification stays out
    assert "C'était son premier accès" in text
    [_, note] = rows(host)
    assert note.status == "sent" and note.sent_at == host.clock() and note.attempts == 1
    assert message["Message-ID"] == notify.message_id(note.id, "dmp@example.test")
    assert CLAIRE not in message.as_string()  # no INS in the mail either


def test_a_regulation_centre_access_and_the_other_events(host: InProcessHost,
                                                         smtp: SmtpServer) -> None:
    guard = host.app.state.guard
    events = [
        lambda: host.client(GP).get(BASE),  # first access: notified
        lambda: host.client(GP).get(BASE),  # second: not
        lambda: host.client(REGULATOR, **{"x-dmp-access-mode": "centre_15"}).get(BASE),
        lambda: patient.close(guard, CLAIRE, "je déménage à l'étranger"),
        lambda: patient.reactivate(guard, CLAIRE),
    ]
    for event in events:
        host.clock.advance(minutes=1)
        event()
    assert [r.kind for r in rows(host)] == [
        "dossier-created", "first-access", "emergency-access", "dossier-closed",
        "dossier-reactivated"]
    counts = drain(host, smtp.url)
    assert counts.sent == 5, [(r.kind, r.status, r.last_error, r.payload) for r in rows(host)]
    subjects = [m["Subject"] for _, m in smtp.mailbox.received]
    assert subjects[1] == "Un nouveau professionnel a accédé à votre DMP"
    regulation = body_of(smtp.mailbox.received[2][1])
    assert "centre de régulation" in regulation
    closed = body_of(smtp.mailbox.received[3][1])
    assert "fermé à votre demande" in closed and "déménage" not in closed


def test_a_document_from_a_new_author_says_only_a_document() -> None:
    payload = {"action": "deposit", "mode": "normal", "actor": "Marie DURAND",
               "profession": "28", "structure": "3101234567", "document": "doc-9",
               "title": "Compte rendu VIH", "type": "Résultat d'analyse",
               "justification": "séropositivité", "newAuthor": True}
    subject, body = notify.render("new-document", payload,
                                  dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC), "Optique X")
    assert subject == "Un document a été ajouté à votre DMP"
    assert "Marie DURAND (opticien-lunetier), Optique X a ajouté un document" in body
    assert "le 01/07/2026 à 14:00 (heure de Paris)" in body  # summer time
    assert "premier document de ce professionnel" in body
    for secret in ("VIH", "analyse", "séropositivité", "doc-9"):
        assert secret not in body and secret not in subject


def test_channel_none_sends_nothing(host: InProcessHost, smtp: SmtpServer) -> None:
    guard = host.app.state.guard
    assert patient.set_notifications(guard, CLAIRE, channel="none")["channel"] == "none"
    host.client(GP, **BTG).get(BASE)
    counts = drain(host, smtp.url)
    assert (counts.sent, counts.skipped) == (0, 2)
    assert smtp.mailbox.received == []
    assert {(r.status, r.last_error) for r in rows(host)} == {("skipped", "channel none")}
    log = patient.access_log(guard, CLAIRE, actor_id=CLAIRE)
    assert "set_notifications" in {e["action"] for e in log}  # traced like the others


def test_an_smtp_server_down_is_retried_with_backoff(host: InProcessHost) -> None:
    port = free_port()
    url = f"smtp://127.0.0.1:{port}"
    backoff = dt.timedelta(seconds=30)
    counts = drain(host, url, backoff=backoff)
    assert (counts.sent, counts.retried) == (0, 1)
    [row] = rows(host)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == host.clock() + backoff and "connect" in row.last_error
    host.clock.advance(seconds=31)
    drain(host, url, backoff=backoff)
    [row] = rows(host)
    assert row.attempts == 2 and row.next_attempt_at == host.clock() + 2 * backoff  # doubled
    server = SmtpServer(port=port).start()
    try:
        host.clock.advance(seconds=30)
        assert drain(host, url, backoff=backoff).sent == 0  # not due yet
        host.clock.advance(seconds=31)
        assert drain(host, url, backoff=backoff).sent == 1
    finally:
        server.stop()
    [row] = rows(host)
    assert (row.status, row.attempts) == ("sent", 3) and server.mailbox.count() == 1


def test_the_contact_at_creation_is_validated(db_url: str, tmp_path: Path) -> None:
    host = InProcessHost(db_url, tmp_path)
    client = host.client(PHARMACIST)
    for contact in ("a@b.org", {"email": "a@b.org, c@d.org"}, {"email": "x" * 250 + "@b.org"},
                    {"email": "a@b.org\r\nBcc: e@f.org"}, {"email": "Claire <a@b.org>"},
                    {"email": 3}, {"phone": "0600000000"}):
        response = client.post(BASE, json={"consent": True, "contact": contact})
        assert response.status_code == 400, contact
        assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "bad-contact"
    assert client.post(BASE, json={"consent": True}).status_code == 201
    host.client(NURSE, **BTG).get(BASE)
    with host.app.state.engine.connect() as connection:
        assert notify_events.contact(connection, CLAIRE) is None
    # No address: only the rule's emergency row, skipped by the sender.
    assert [r.kind for r in rows(host)] == ["emergency-access"]


def test_the_commands(host: InProcessHost, smtp: SmtpServer,
                      capsys: pytest.CaptureFixture[str]) -> None:
    url = host.settings.database_url
    assert main(["patient", "notifications", "--ins", CLAIRE, "--channel", "none",
                 "--database", url]) == 0
    assert json.loads(capsys.readouterr().out)["channel"] == "none"
    assert main(["patient", "notifications", "--ins", CLAIRE, "--email",
                 "claire@example.net", "--database", url]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ins": CLAIRE, "email": "claire@example.net", "channel": "email"}
    assert main(["patient", "notifications", "--ins", CLAIRE, "--email", "a@b, c@d",
                 "--database", url]) == 1
    assert "bad-contact" in capsys.readouterr().err
    assert main(["notify", "run", "--once", "--database", url, "--smtp", smtp.url]) == 0
    assert "sent 1" in capsys.readouterr().out
    assert smtp.mailbox.received[0][0] == ["claire@example.net"]
    assert main(["notify", "status", "--database", url]) == 0
    assert capsys.readouterr().out.startswith("pending 0, sending 0, sent 1,")


def _sender(db_url: str, smtp_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "host.cli", "notify", "run", "--database", db_url, "--smtp",
         smtp_url, "--interval", "0.2"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_killing_the_sender_never_sends_twice(host: InProcessHost) -> None:
    engine = host.app.state.engine
    with engine.begin() as connection:
        for n in range(49):  # with the creation's: 50 rows
            notify_events.add(connection, CLAIRE, "first-access", {
                "actor": f"Soignant {n}", "profession": "60", "mode": "normal"},
                host.clock() + dt.timedelta(seconds=n + 1))
    server = SmtpServer(delay=0.15).start()
    url = host.settings.database_url
    kills = 0
    try:
        for target in (5, 15, 27, 38):
            sender = _sender(url, server.url)
            deadline = time.monotonic() + 60
            while server.mailbox.count() < target and sender.poll() is None:
                assert time.monotonic() < deadline, "the sender sends nothing"
                time.sleep(0.01)
            sender.send_signal(signal.SIGKILL)  # mid-batch, most likely waiting for a 250
            sender.wait()
            kills += 1
        final = subprocess.run(
            [sys.executable, "-m", "host.cli", "notify", "run", "--once", "--database", url,
             "--smtp", server.url], cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert final.returncode == 0, final.stderr
    finally:
        server.stop()
    ids = [m["Message-ID"] for _, m in server.mailbox.received]
    assert len(ids) == len(set(ids)), "a notification was received twice"
    states = {r.id: r.status for r in rows(host)}
    assert len(states) == 50 and set(states.values()) <= {"sent", "uncertain"}
    uncertain = [i for i, status in states.items() if status == "uncertain"]
    assert len(uncertain) <= kills
    for ident, status in states.items():
        if status == "sent":
            assert ids.count(notify.message_id(ident, NotifySettings().sender)) == 1
    # Reported: by the status command (exit 1 when some are uncertain).
    report = notify.status(engine)
    assert report["counts"]["uncertain"] == len(uncertain)
    assert report["counts"]["sent"] == 50 - len(uncertain)
    assert main(["notify", "status", "--database", url]) == (1 if uncertain else 0)
