"""Shared fixtures: a real pcscd with two vpcd slots, and virtual card insertion."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.pcscd import Pcscd
from cardreader.virtual.vpcd import VirtualCard, VpcdLink, slot_port

# No test touches the developer's real keyring (the outbox key would land there): the agents
# the tests run, in process and as children, keep it in the sealed file; the keyring path is
# tested with an in-memory backend (tests/agent/test_outbox_at_rest.py).
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
# Nor the machine's administrator configuration (/etc/dmp-agent/agent.toml): the tests that
# exercise it name their own.
os.environ["DMP_AGENT_SYSTEM_CONFIG"] = "/nonexistent/dmp-agent/agent.toml"
# Nor the user's own agent: what a test opens with the default paths (the outbox, the keys,
# the settings) lives in this run's folders, never in ~/.local/share, where another run, or
# the developer's agent, has its own (an outbox of a newer schema there failed a test).
_USER_DIRS = tempfile.mkdtemp(prefix="dmp-tests-")
for _name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
    os.environ[_name] = os.path.join(_USER_DIRS, _name.lower())
# The tests read what the agents say in French, the default: a developer's English locale
# must not change it (ui.language = auto follows LANGUAGE first). The tests of English set
# it themselves (`english`, or ui.language in the agent's configuration).
os.environ["LANGUAGE"] = "fr"
# Every deposit is a CDA checked against the CI-SIS files, which are not redistributable
# and absent in CI (wire/cda/cisis/README.md): the tests run in the explicit optional mode
# (docs/cda.md): without the files, schema and schematrons skipped, said in each deposit's
# answer and by the doctor; with them (read by this process at import), every check. The
# agents, hosts and commands the tests start get no files even where they are installed:
# each process would otherwise compile the 10 MB header schematron (10-50 s) at its first
# deposit. The CDA tests run the checks in this process, or give their live agent and host
# the files (tests/cda_support.py `children_with_cisis`).
from wire.cda import schematron as _cisis  # noqa: E402, F401 - reads DMP_CISIS_DIR first

os.environ["DMP_CISIS_DIR"] = os.path.join(_USER_DIRS, "no-cisis-files")
os.environ["DMP_CDA_CISIS"] = "optional"


@pytest.fixture(autouse=True)
def _french() -> Iterator[None]:
    """Each test starts and ends in French, whatever the one before chose."""
    from agent.i18n import use_language

    use_language("fr")
    yield
    use_language("fr")


@pytest.fixture
def english() -> Iterator[None]:
    """This test's process speaks English (the ``ui.language = "en"`` setting)."""
    from agent.i18n import use_language

    use_language("en")
    yield


@pytest.fixture(scope="session")
def pcscd() -> Iterator[Pcscd]:
    """The real pcscd for the whole test session (restartable by tests that need it)."""
    daemon = Pcscd()
    daemon.start()
    yield daemon
    daemon.close()


Insert = Callable[..., VpcdLink]


@pytest.fixture
def insert_card(pcscd: Pcscd) -> Iterator[Insert]:
    """insert_card(card, slot=0, **link_options) plugs a virtual card into a vpcd slot and
    returns once pcscd reports it present (after the previous card was seen gone: pcscd
    notices a removal up to ~0.4 s late).

    Every card still inserted at the end of the test is removed.
    """
    links: list[VpcdLink] = []

    def insert(card: VirtualCard, slot: int = 0, **options: object) -> VpcdLink:
        reader = list_readers()[slot]
        assert wait_for_card(reader, present=False), f"slot {slot} still holds a card"
        link = VpcdLink(card, slot_port(slot, pcscd.port), **options).start()  # type: ignore[arg-type]
        assert wait_for_card(reader, present=True), f"pcscd did not see the card in {slot}"
        links.append(link)
        return link

    yield insert
    for link in links:
        link.stop()
    if links:
        time.sleep(0.05)


# -- storage: every storage and HTTP test runs on SQLite and on a real PostgreSQL ------------
@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster for the whole session (started on first use)."""
    from tests.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory) -> dict[str, object]:
    """Migrate once per session; each test then gets a copy (a file copy for SQLite, a
    CREATE DATABASE ... TEMPLATE for PostgreSQL), which is much faster than migrating."""
    from host.store import upgrade

    sqlite_template = tmp_path_factory.mktemp("template") / "host.db"
    upgrade(f"sqlite:///{sqlite_template}")
    return {"sqlite": sqlite_template, "postgresql": None}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, _migrated_templates) -> str:
    """A fresh, migrated database: SQLite in a temp file, then a new PostgreSQL database."""
    import shutil

    from host.store import upgrade

    if request.param == "sqlite":
        target = tmp_path / "host.db"
        shutil.copyfile(_migrated_templates["sqlite"], target)
        return f"sqlite:///{target}"
    cluster = request.getfixturevalue("postgres")
    if _migrated_templates["postgresql"] is None:
        template_url = cluster.create_database("dmp_template")
        upgrade(template_url)
        _migrated_templates["postgresql"] = "dmp_template"
    return cluster.create_database(
        f"t{abs(hash(request.node.nodeid)) % 10**12}", template="dmp_template"
    )
