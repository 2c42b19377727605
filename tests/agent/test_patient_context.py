"""The patient context follows the Vitale card: the agent core (the one every view runs,
in-process here) through the real pcscd + vpcd and the real host over TLS, with a GP's
session opened from a virtual CPS."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.core.service import AgentService
from agent.install.enrol import enrol_from_pki
from cardreader.pcsc import list_readers
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from tests.host.tls_harness import PIN, make_pki, tls_host

pytestmark = pytest.mark.pcsc

WAIT = 15.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_the_dossier_follows_the_card_in_the_reader(pki, tmp_path, insert_card,
                                                    _migrated_templates) -> None:
    shutil.copyfile(_migrated_templates["sqlite"], tmp_path / "host.db")
    with tls_host(f"sqlite:///{tmp_path / 'host.db'}", pki, tmp_path / "blobs") as host:
        config = AgentConfig(host_url=host.base_url, host_ca=pki / "server" / "ca.pem",
                             credentials_dir=tmp_path / "workstation",
                             data_dir=tmp_path / "data", log_dir=tmp_path / "log")
        enrol_from_pki(pki, config=config)
        insert_card(VirtualCps.from_profile("gp", ca=TestHealthCA.load(pki / "health-ca")))
        cps_reader, vitale_reader = list_readers()[0], list_readers()[1]
        with AgentService(config, cps_reader=cps_reader, with_outbox=False) as core:
            assert core.settle()
            core.open_session(PIN)
            # The family card holds three people: the core asks which one; the holder.
            family_card = insert_card(VirtualVitale.from_profile("family"), slot=1)
            assert core.wait_until(lambda: core.patient is not None
                                   and core.patient.state == "choosing", WAIT)
            core.select_person(1)
            family = core.patient
            assert family is not None and family.state == "ready", family
            assert family.reader == vitale_reader
            assert family.card.beneficiaries[0] == PROFILES["family"].holder
            assert family.dmp is not None and family.dmp["status"] in ("absent", "open")
            family_ins = family.context.ins if family.context else None

            family_card.stop()  # the patient leaves with the card
            assert core.wait_until(lambda: core.patient is None, WAIT)  # cleared at once
            assert core.snapshot()["patient"]["documents"] == []
            insert_card(VirtualVitale.from_profile("single"), slot=1)  # the next patient
            assert core.wait_until(lambda: core.patient is not None
                                   and core.patient.state == "ready", WAIT)
            single = core.patient
            assert single is not None and single.context is not None
            assert single.context.ins != family_ins
            assert single.card.beneficiaries[0].birth_date == PROFILES["single"].holder.birth_date
