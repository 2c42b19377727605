"""The patient context follows the Vitale card: through the real pcscd + vpcd and the real
host over TLS, with a GP's session opened from a virtual CPS."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from agent.core.patient_context import ContextEvent, PatientWatcher
from agent.core.pin import FixedPrompt
from agent.core.professional import ProfessionalSession
from cardreader.pcsc import list_readers
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from tests.host.tls_harness import PIN, make_pki, tls_host, workstation

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _next(events: queue.Queue[ContextEvent]) -> ContextEvent:
    return events.get(timeout=15)


def test_the_dossier_follows_the_card_in_the_reader(pki, tmp_path, insert_card,
                                                    _migrated_templates) -> None:
    import shutil

    shutil.copyfile(_migrated_templates["sqlite"], tmp_path / "host.db")
    with tls_host(f"sqlite:///{tmp_path / 'host.db'}", pki, tmp_path / "blobs") as host:
        insert_card(VirtualCps.from_profile("gp", ca=TestHealthCA.load(pki / "health-ca")))
        cps_reader, vitale_reader = list_readers()[0], list_readers()[1]
        events: queue.Queue[ContextEvent] = queue.Queue()
        with (
            ProfessionalSession.open(cps_reader, workstation(pki), host.base_url,
                                     FixedPrompt(PIN)) as session,
            PatientWatcher(vitale_reader, session.dmp, events.put),
        ):
            # The family card holds three people: the watcher's chooser takes the holder.
            family_card = insert_card(VirtualVitale.from_profile("family"), slot=1)
            family = _next(events)
            assert family.dossier is not None, family.error
            assert family.dossier.person == PROFILES["family"].holder
            assert family.dossier.existence["status"] in ("absent", "open")

            family_card.stop()  # the patient leaves with the card
            cleared = _next(events)
            assert cleared.dossier is None  # removal clears the context at once
            insert_card(VirtualVitale.from_profile("single"), slot=1)  # the next patient
            single = _next(events)
            assert single.dossier is not None
            assert single.dossier.patient.ins != family.dossier.patient.ins
            assert single.dossier.person.birth_date == PROFILES["single"].holder.birth_date
