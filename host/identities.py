"""The INSi-like identity service: Vitale traits -> the patient's INS.

The national service (INSi) is what makes an INS usable: only an INS it returned may be used
to create or feed a DMP (DOMAIN.md). Ours searches the `patients` table, seeded from
`host/seed_identities.json`. A Vitale card may carry the insured parent's NIR for a child, so
the search is by traits (birth name, first names, birth date as on the card, sex, birth
place), narrowed by the insured's NIR and the birth rank when the card gives them. The route
is `host.routes.identity`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from .errors import HostError, bad_request
from .store.schema import patients

NIR_OID = "1.2.250.1.213.1.4.8"
NIA_OID = "1.2.250.1.213.1.4.9"
TEST_OID = "1.2.250.1.213.1.4.10"
INS_OIDS = frozenset({NIR_OID, NIA_OID, TEST_OID})

# 13 characters (sex, year, month, département with 2A/2B, commune, order) + 2-digit key.
_INS_RE = re.compile(r"^[1-8]\d{4}(?:\d{2}|2A|2B)\d{6}\d{2}$")
_BIRTH_DATE_RE = re.compile(r"^\d{8}$")
_BIRTH_PLACE_RE = re.compile(r"^(?:\d{5}|2A\d{3}|2B\d{3})$")
MAX_TRAIT = 100


def ins_key(nir13: str) -> str:
    """The NIR key: 97 - (NIR mod 97), Corsica's 2A read as 19 and 2B as 18."""
    number = int(nir13.replace("2A", "19").replace("2B", "18"))
    return f"{97 - number % 97:02d}"


def valid_ins(value: str) -> bool:
    """A well-formed NIR or NIA with its key (15 characters)."""
    return bool(_INS_RE.match(value)) and ins_key(value[:13]) == value[13:]


def checked_ins(value: str) -> str:
    """``value`` if it is a well-formed INS, else a 400 ``bad-ins``."""
    if not valid_ins(value):
        raise bad_request(
            "bad-ins",
            "INS mal formé / malformed INS: 13 characters (NIR or NIA) and a valid 2-digit key",
        )
    return value


def normalise(text: str) -> str:
    """Names compared as INSi does in spirit: case, accents, hyphens and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    return " ".join(re.sub(r"[-'’]", " ", plain).split())


def _first_names_match(given: str, first_names: str, first_name: str) -> bool:
    """The card shows one first name (or a few): it must be the used first name or the
    beginning of the list of first names."""
    wanted = normalise(given)
    if wanted == normalise(first_name):
        return True
    names = normalise(first_names)
    return names == wanted or names.startswith(wanted + " ")


def identity_document(row: Row[Any]) -> dict[str, Any]:
    return {
        "ins": row.ins,
        "insOid": row.ins_oid,
        "birthName": row.birth_name,
        "firstNames": row.first_names,
        "firstName": row.first_name,
        "sex": row.sex,
        "birthDate": row.birth_date,
        "birthPlace": row.birth_place,
    }


def find_patient(connection: Connection, ins: str) -> Row[Any] | None:
    return connection.execute(select(patients).where(patients.c.ins == ins)).one_or_none()


def refuse_test_identity(production: bool, ins_oid: str) -> None:
    """A production host serves no test or demo identity (test OID)."""
    if production and ins_oid == TEST_OID:
        raise HostError(
            403, "test-identity-refused",
            "Identité de test refusée par un hôte de production / a production host refuses "
            "test and demo identities (OID 1.2.250.1.213.1.4.10)",
            issue_type="security",
        )


def trait_text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """One typed trait of a request: a non-empty string of at most MAX_TRAIT characters,
    stripped; a 400 ``missing-trait`` / ``bad-trait`` otherwise (the identity lookup and
    the INS service read traits alike)."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request("missing-trait", f"Trait manquant / missing trait {name!r}")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TRAIT:
        raise bad_request("bad-trait", f"Trait invalide / {name!r} must be a non-empty string "
                          f"of at most {MAX_TRAIT} characters")
    return value.strip()


def json_object(body: Any) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 ``bad-request``."""
    if not isinstance(body, dict):
        raise bad_request("bad-request", "Corps JSON objet attendu / a JSON object is expected")
    return body


def parse_traits(body: Any) -> dict[str, Any]:
    """The request's traits, checked; a 400 with a code for anything malformed."""
    body = json_object(body)
    traits: dict[str, Any] = {
        "birthName": trait_text(body, "birthName", required=True),
        "firstNames": trait_text(body, "firstNames", required=True),
        "birthDate": trait_text(body, "birthDate", required=True),
        "sex": trait_text(body, "sex", required=False),
        "birthPlace": trait_text(body, "birthPlace", required=False),
        "insuredNir": trait_text(body, "insuredNir", required=False),
    }
    if not _BIRTH_DATE_RE.match(traits["birthDate"]):
        raise bad_request("bad-trait", "birthDate: YYYYMMDD as on the card (00 when unknown)")
    if traits["sex"] is not None and traits["sex"] not in ("M", "F"):
        raise bad_request("bad-trait", "sex: M or F")
    if traits["birthPlace"] is not None and not _BIRTH_PLACE_RE.match(traits["birthPlace"]):
        raise bad_request("bad-trait", "birthPlace: the 5-character INSEE code")
    if traits["insuredNir"] is not None and not valid_ins(traits["insuredNir"]):
        raise bad_request("bad-trait", "insuredNir: NIR + key (15 characters) as on the card")
    rank = body.get("birthRank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)
                             or not 1 <= rank <= 9):
        raise bad_request("bad-trait", "birthRank: an integer from 1 to 9")
    traits["birthRank"] = rank
    quality = body.get("quality")
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)):
        raise bad_request("bad-trait", "quality: the card's quality code (integer)")
    return traits


def resolve(connection: Connection, traits: dict[str, Any]) -> list[Row[Any]]:
    """Every reference identity matching ``traits`` (as `parse_traits` returns them)."""
    query = select(patients).where(patients.c.birth_date == traits["birthDate"])
    insured = traits["insuredNir"]
    if insured is not None:
        # The card shows the insured's NIR: the person is the insured or covered under them.
        query = query.where(or_(patients.c.insured_nir == insured, patients.c.ins == insured))
    candidates = connection.execute(query).all()
    birth_name = normalise(traits["birthName"])
    found = []
    for row in candidates:
        if normalise(row.birth_name) != birth_name:
            continue
        if not _first_names_match(traits["firstNames"], row.first_names, row.first_name):
            continue
        if traits["sex"] is not None and row.sex != traits["sex"]:
            continue
        if traits["birthPlace"] is not None and row.birth_place != traits["birthPlace"]:
            continue
        # The birth rank tells apart twins covered under the same insured.
        if insured is not None and traits["birthRank"] is not None and (
            row.birth_rank != traits["birthRank"]
        ):
            continue
        found.append(row)
    return found
