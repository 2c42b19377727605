"""The replacement rule both sides apply (wire/cda/replacement.py): a level 1 document built as
a new version reads back naming the replaced one; a header that does not name it, leaves its
set or does not number itself above it is refused with its own code, and so is a new
document that says it replaces a current one of the DMP; a replaced document
without a CDA header (a bare PDF from before) is named by its uniqueId."""

from __future__ import annotations

import dataclasses

import pytest

from tests.cda_support import VSM, a_pdf, as_version, level1_header
from wire import cda
from wire.cda.errors import CdaError
from wire.cda.replacement import Replaced, check, check_new


def first() -> cda.CdaHeader:
    return cda.read(cda.build_level_1(level1_header(), a_pdf())).header


def test_a_level_1_new_version_reads_back_naming_the_replaced_one() -> None:
    old = first()
    replaced = Replaced(f"urn:oid:{old.document_id}", old)
    header = dataclasses.replace(level1_header(), replaces=replaced.document_id,
                                 set_id=replaced.set_id, version=replaced.next_version)
    new = cda.read(cda.build_level_1(header, a_pdf())).header
    assert (new.replaces, new.set_id, new.version) == (old.document_id, old.set_id, 2)
    assert new.document_id != old.document_id
    check(new, replaced)  # accepted


@pytest.mark.parametrize(("changes", "code"), [
    ({"replaces": None}, "cda-replacement-parent"),
    ({"replaces": "2.25.7"}, "cda-replacement-parent"),
    ({"set_id": "2.25.8"}, "cda-replacement-set-id"),
    ({"version": 1}, "cda-replacement-version"),
])
def test_a_header_that_does_not_name_the_replaced_version_is_refused(
        changes: dict[str, object], code: str) -> None:
    old = first()
    new = dataclasses.replace(old, document_id="2.25.9", replaces=old.document_id, version=2)
    with pytest.raises(CdaError) as refused:
        check(dataclasses.replace(new, **changes), Replaced(f"urn:oid:{old.document_id}", old))
    assert refused.value.code == code


def test_a_replaced_document_without_a_header_is_named_by_its_unique_id() -> None:
    replaced = Replaced("urn:uuid:5b0c8f8e-3f39-4c7e-9a51-2a8d2b1f0c11")
    assert replaced.document_id == replaced.set_id == "5b0c8f8e-3f39-4c7e-9a51-2a8d2b1f0c11"
    assert replaced.next_version == 2
    new = dataclasses.replace(first(), replaces="5B0C8F8E-3F39-4C7E-9A51-2A8D2B1F0C11")
    check(new, replaced)  # a UUID is the same in either case


def test_a_structured_cda_written_as_the_next_version_passes() -> None:
    old = cda.read(VSM.read_bytes()).header
    new = cda.read(as_version(VSM.read_bytes(), "2.25.10", replaces=old)).header
    assert (new.replaces, new.set_id, new.version) == (old.document_id, old.set_id, 2)
    check(new, Replaced(f"urn:oid:{old.document_id}", old))



def test_a_new_document_must_not_say_it_replaces_a_current_one_of_the_dmp() -> None:
    old = first()
    held = {f"urn:oid:{old.document_id}"}
    check_new(old, held.__contains__)  # a first version: accepted
    new = dataclasses.replace(old, document_id="2.25.9", replaces=old.document_id)
    with pytest.raises(CdaError) as refused:
        check_new(new, held.__contains__)
    assert refused.value.code == "cda-replacement-undeclared"
    # A version the DMP does not hold (sent elsewhere, or an id with an extension): accepted.
    check_new(new, set().__contains__)
    check_new(dataclasses.replace(new, replaces="1.2.250.1.213.1.1.9^OPH-BRE_1"),
              lambda unique_id: True)
