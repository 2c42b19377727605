"""What the CDA checks do without the CI-SIS files (docs/cda.md "Without the CI-SIS files"):
by default every CDA is refused ("cisis-data-missing"); in the explicit optional mode the
schema and schematrons are skipped, said (returned, logged), and everything else still runs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.cda_support import VAC_NOTE
from wire import cda
from wire.cda import CdaError, schematron


@pytest.fixture
def no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schematron, "DATA_DIR", tmp_path / "absent")
    monkeypatch.setattr(cda, "_warned", type(cda._warned)())  # each test sees the first warning


def test_by_default_a_cda_is_refused_without_the_files(no_files: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cda.CISIS_MODE_VARIABLE, raising=False)
    state = cda.cisis_state()
    assert (state.mode, state.installed, state.skipping) == ("required", False, False)
    with pytest.raises(CdaError) as caught:
        cda.validate(cda.read(VAC_NOTE.read_bytes()))
    assert caught.value.code == "cisis-data-missing"


def test_the_optional_mode_skips_schema_and_schematrons_and_says_so(
        no_files: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(cda.CISIS_MODE_VARIABLE, "optional")
    assert cda.cisis_state().skipping
    with caplog.at_level(logging.WARNING, logger="wire.cda"):
        skipped = cda.validate(cda.read(VAC_NOTE.read_bytes()))
        cda.validate(cda.read(VAC_NOTE.read_bytes()))
    assert skipped == ("cda-xsd", "cda-schematron")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "SKIPPED" in warnings[0]  # once a process, never silent
    # The safe parse and the header checks still run.
    with pytest.raises(CdaError) as caught:
        cda.read(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "x">]><a>&x;</a>')
    assert caught.value.code.startswith("xml-")


def test_an_unknown_mode_value_is_the_default(no_files: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cda.CISIS_MODE_VARIABLE, "skip-everything")
    assert cda.cisis_state().mode == "required"
