"""A CDA from outside is parsed safely (wire.cda.safe_xml): XML bombs, external entities and
external DTDs are refused each with its own code, before anything is expanded or read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cda_support import LEVEL_1
from wire import cda
from wire.cda.errors import CdaError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>"""


def external_entity(path: Path) -> bytes:
    return (b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [\n <!ENTITY secret SYSTEM "file://'
            + str(path).encode() + b'">\n]>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
            b"<title>&secret;</title></ClinicalDocument>")


def refused(data: bytes) -> CdaError:
    with pytest.raises(CdaError) as caught:
        cda.read(data)
    return caught.value


def test_billion_laughs_is_refused_as_entity_expansion() -> None:
    assert refused(BILLION_LAUGHS).code == "xml-entity-expansion"


def test_an_external_entity_is_refused_and_the_file_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("NIR 1 84 05 75 123 456 78")
    error = refused(external_entity(secret))
    assert error.code == "xml-external-entity"
    assert "NIR" not in str(error)


def test_a_parameter_entity_to_the_network_is_refused() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % remote SYSTEM '
            b'"http://127.0.0.1:9/evil.dtd"> %remote;]><ClinicalDocument xmlns="urn:hl7-org:v3"/>')
    assert refused(data).code == "xml-external-entity"


def test_an_external_dtd_is_refused() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">'
            b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>')
    assert refused(data).code == "xml-external-dtd"


def test_any_doctype_is_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument><ClinicalDocument/>'
    assert refused(data).code == "xml-dtd"


def test_an_undeclared_entity_is_malformed_xml() -> None:
    data = b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&secret;</title></ClinicalDocument>'
    assert refused(data).code == "xml-malformed"


def test_malformed_xml_is_refused_with_its_own_code() -> None:
    assert refused(b"<ClinicalDocument><title></ClinicalDocument>").code == "xml-malformed"


def test_utf16_and_other_encodings_are_refused() -> None:
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><ClinicalDocument/>'.encode("utf-16")
    assert refused(utf16).code == "xml-encoding"
    latin = b'<?xml version="1.0" encoding="ISO-8859-1"?><ClinicalDocument/>'
    assert refused(latin).code == "xml-encoding"


def test_a_document_over_the_size_cap_is_refused_before_parsing() -> None:
    data = LEVEL_1.read_bytes()
    with pytest.raises(CdaError) as caught:
        cda.read(data, max_bytes=len(data) - 1)
    assert caught.value.code == "xml-too-large"


def test_deep_nesting_is_refused_by_the_parser_limits() -> None:
    data = b"<a>" * 100_000 + b"</a>" * 100_000
    assert refused(data).code == "xml-malformed"


def test_another_xml_document_is_not_a_cda() -> None:
    assert refused(b'<Bundle xmlns="http://hl7.org/fhir"/>').code == "cda-not-clinical-document"
