"""The INS service's contract, both sides: identities as FR Core Patient resources, and the
identity's RNIV status as FR Core's identity-reliability extension (docs/ins.md).

Sources (Interop'Santé, hl7.fhir.fr.core, `input/fsh/`): the profile `fr-core-patient-ins`
(its INS identifier slices: NIR OID 1.2.250.1.213.1.4.8, NIA .9, test NIR .10), the extensions
`fr-core-identity-reliability` (sub-extensions ``identityStatus``, ``validationMode``,
``validationDate``), `fr-core-patient-birth-place`, `fr-core-address-insee-code`,
`fr-core-patient-birth-list-given-name`, `fr-core-lunar-date`, and the code systems
`fr-core-cs-identity-status` (PROV, RECUP, VALI, QUAL) and `fr-core-cs-mode-validation-identity`
(CN, PA, CS, AN, LEP...). The birth rank's extension is ours (FR Core has none).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import codes

FR_CORE = "https://hl7.fr/ig/fhir/core"
PATIENT_INS_PROFILE = f"{FR_CORE}/StructureDefinition/fr-core-patient-ins"
BIRTH_PLACE_URL = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-place"
INSEE_CODE_URL = f"{FR_CORE}/StructureDefinition/fr-core-address-insee-code"
BIRTH_LIST_GIVEN_NAME_URL = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
LUNAR_DATE_URL = f"{FR_CORE}/StructureDefinition/fr-core-lunar-date"
RELIABILITY_URL = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
IDENTITY_STATUS_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"
VALIDATION_MODE_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-mode-validation-identity"
IDENTIFIER_TYPES = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
INSEE_SYSTEM = f"{codes.NOS}/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
BIRTH_RANK_URL = "urn:dmp:ins:birth-rank"  # ours: INSi's "rang de naissance"

# The RNIV statuses (fr-core-cs-identity-status): the agent's words and the codes.
PROVISOIRE, RECUPEREE, VALIDEE, QUALIFIEE = "provisoire", "récupérée", "validée", "qualifiée"
STATUS_CODES = {PROVISOIRE: "PROV", RECUPEREE: "RECUP", VALIDEE: "VALI", QUALIFIEE: "QUAL"}
STATUS_OF_CODE = {code: word for word, code in STATUS_CODES.items()}


@dataclass(frozen=True)
class IdentityDocument:
    """A high-trust identity document the RNIV accepts; ``code`` in
    fr-core-cs-mode-validation-identity; ``minor``: accepted for a minor only, with the
    document of the parent presenting the child."""

    key: str
    code: str
    label: str
    minor: bool = False


IDENTITY_DOCUMENTS = {d.key: d for d in (
    IdentityDocument("passeport", "PA", "Passeport"),
    IdentityDocument("carte-identite", "CN", "Carte nationale d'identité"),
    IdentityDocument("carte-identite-electronique", "eCN", "Carte nationale d'identité "
                     "électronique"),
    IdentityDocument("titre-de-sejour", "CS", "Titre de séjour"),
    IdentityDocument("acte-de-naissance", "AN", "Extrait d'acte de naissance (mineur, avec la "
                     "pièce d'identité du parent)", minor=True),
    IdentityDocument("livret-de-famille", "LEP", "Livret de famille (mineur, avec la pièce "
                     "d'identité du parent)", minor=True),
)}
DOCUMENT_OF_CODE = {d.code: d for d in IDENTITY_DOCUMENTS.values()}


class InsError(ValueError):
    """An answer of the INS service that does not have the expected shape."""


@dataclass(frozen=True)
class InsIdentity:
    """An identity as the INS service holds it. ``first_names``: the registry's list,
    space-separated; ``birth_date``: YYYYMMDD, month or day 00 when unknown (lunar)."""

    ins: str
    oid: str
    birth_name: str
    first_names: str
    sex: str
    birth_date: str
    birth_place: str
    birth_rank: int = 1

    @property
    def first_name(self) -> str:
        return self.first_names.split()[0] if self.first_names.split() else ""

    def as_json(self) -> dict[str, Any]:
        return {"ins": self.ins, "insOid": self.oid, "birthName": self.birth_name,
                "firstNames": self.first_names, "firstName": self.first_name,
                "sex": self.sex, "birthDate": self.birth_date, "birthPlace": self.birth_place,
                "birthRank": self.birth_rank}

    def traits_key(self) -> str:
        """The traits as one line, to tell whether the service still answers the same."""
        return "|".join((self.ins, self.oid, self.birth_name, self.first_names, self.sex,
                         self.birth_date, self.birth_place, str(self.birth_rank)))


def _birth_date(value: str) -> tuple[str, dict[str, Any] | None]:
    """FHIR's date has no month 00 nor day 00: a lunar date keeps what is known and carries
    the registry's value in FR Core's lunar-date extension."""
    year, month, day = value[:4], value[4:6], value[6:]
    lunar = {"extension": [{"url": LUNAR_DATE_URL, "valueString": value}]}
    if month == "00":
        return year, lunar
    if day == "00":
        return f"{year}-{month}", lunar
    return f"{year}-{month}-{day}", None


def _identifier(identity: InsIdentity) -> dict[str, Any]:
    kind, use = {codes.INS_NIA_OID: ("INS-NIA", "temp"),
                 codes.INS_TEST_OID: ("INS-NIR-TEST", "official")}.get(
        identity.oid, ("INS-NIR", "official"))
    return {"use": use, "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": kind}]},
            "system": f"urn:oid:{identity.oid}", "value": identity.ins}


def patient_resource(identity: InsIdentity) -> dict[str, Any]:
    """``identity`` as a `fr-core-patient-ins`-shaped Patient."""
    birth_date, lunar = _birth_date(identity.birth_date)
    resource: dict[str, Any] = {
        "resourceType": "Patient", "id": identity.ins,
        "meta": {"profile": [PATIENT_INS_PROFILE]},
        "extension": [
            {"url": BIRTH_PLACE_URL, "valueAddress": {
                "district": identity.birth_place,
                "extension": [{"url": INSEE_CODE_URL, "valueCoding": {
                    "system": INSEE_SYSTEM, "code": identity.birth_place}}]}},
            {"url": BIRTH_RANK_URL, "valueInteger": identity.birth_rank},
        ],
        "identifier": [_identifier(identity)],
        "name": [{"use": "official", "family": identity.birth_name,
                  "given": [identity.first_name],
                  "extension": [{"url": BIRTH_LIST_GIVEN_NAME_URL,
                                 "valueString": identity.first_names}]}],
        "gender": {"M": "male", "F": "female"}.get(identity.sex, "unknown"),
        "birthDate": birth_date,
    }
    if lunar is not None:
        resource["_birthDate"] = lunar
    return resource


def _extension(resource: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for extension in resource.get("extension") or ():
        if isinstance(extension, Mapping) and extension.get("url") == url:
            return extension
    return None


def _string(value: Any, what: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InsError(f"{what}: a string is expected")
    return value


def identity_from_patient(resource: Any) -> InsIdentity:
    """The identity of a Patient written by `patient_resource`; `InsError` otherwise."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
        raise InsError("a Patient resource is expected")
    identifiers = [i for i in resource.get("identifier") or () if isinstance(i, Mapping)
                   and str(i.get("system", "")).removeprefix("urn:oid:") in codes.INS_OIDS]
    if len(identifiers) != 1:
        raise InsError("Patient: exactly one INS identifier is expected")
    names = [n for n in resource.get("name") or () if isinstance(n, Mapping)
             and n.get("use") == "official"]
    if len(names) != 1:
        raise InsError("Patient: one official name is expected")
    listed = _extension(names[0], BIRTH_LIST_GIVEN_NAME_URL)
    place = _extension(resource, BIRTH_PLACE_URL)
    rank = _extension(resource, BIRTH_RANK_URL)
    lunar = _extension(resource.get("_birthDate") or {}, LUNAR_DATE_URL)
    birth = (lunar or {}).get("valueString") or str(resource.get("birthDate", "")).replace(
        "-", "")
    if not re.fullmatch(r"\d{8}", birth):
        raise InsError("Patient.birthDate: a full date, or the lunar-date extension")
    sex = {"male": "M", "female": "F"}.get(str(resource.get("gender")))
    if sex is None:
        raise InsError("Patient.gender: male or female")
    address = (place or {}).get("valueAddress") or {}
    return InsIdentity(
        ins=_string(identifiers[0].get("value"), "identifier.value", 15),
        oid=str(identifiers[0]["system"]).removeprefix("urn:oid:"),
        birth_name=_string(names[0].get("family"), "name.family"),
        first_names=_string((listed or {}).get("valueString"), "birth-list-given-name"),
        sex=sex, birth_date=birth,
        birth_place=_string(address.get("district"), "birth-place.district", 5),
        birth_rank=int((rank or {}).get("valueInteger") or 1))


def searchset(identities: list[InsIdentity]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(identities),
            "entry": [{"fullUrl": f"urn:ins:{i.ins}", "resource": patient_resource(i),
                       "search": {"mode": "match"}} for i in identities]}


def identities_from_searchset(bundle: Any) -> list[InsIdentity]:
    if not isinstance(bundle, Mapping) or bundle.get("type") != "searchset":
        raise InsError("a searchset Bundle is expected")
    return [identity_from_patient(entry.get("resource"))
            for entry in bundle.get("entry") or () if isinstance(entry, Mapping)]


@dataclass(frozen=True)
class Verification:
    """The service's verdict on a known INS with its traits: ``result`` match, mismatch
    (``differences`` names the traits) or unknown; ``identity`` as the service holds it."""

    result: str
    differences: tuple[str, ...] = ()
    identity: InsIdentity | None = None


def verification_json(verdict: Verification) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"name": "result", "valueCode": verdict.result}]
    parameters += [{"name": "difference", "valueString": d} for d in verdict.differences]
    if verdict.identity is not None:
        parameters.append({"name": "patient", "resource": patient_resource(verdict.identity)})
    return {"resourceType": "Parameters", "parameter": parameters}


def verification_from_json(resource: Any) -> Verification:
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Parameters":
        raise InsError("a Parameters resource is expected")
    result, found, identity = None, [], None
    for parameter in resource.get("parameter") or ():
        if not isinstance(parameter, Mapping):
            continue
        if parameter.get("name") == "result":
            result = parameter.get("valueCode")
        elif parameter.get("name") == "difference":
            found.append(str(parameter.get("valueString")))
        elif parameter.get("name") == "patient":
            identity = identity_from_patient(parameter.get("resource"))
    if result not in ("match", "mismatch", "unknown"):
        raise InsError("Parameters.result: match, mismatch or unknown")
    return Verification(result, tuple(found), identity)


# -- the identity's RNIV status on the wire (the deposit's submission set) -------------------

@dataclass(frozen=True)
class IdentityReliability:
    """The RNIV status of the patient's identity, as FR Core's identity-reliability
    extension carries it: ``status`` one of the four words, ``document`` the key of the
    identity document checked (validée, qualifiée), ``validated`` when."""

    status: str
    document: str | None = None
    validated: dt.date | None = None

    @property
    def qualified(self) -> bool:
        return self.status == QUALIFIEE


def reliability_extension(reliability: IdentityReliability) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "identityStatus", "valueCoding": {
        "system": IDENTITY_STATUS_SYSTEM, "code": STATUS_CODES[reliability.status]}}]
    if reliability.document is not None:
        document = IDENTITY_DOCUMENTS[reliability.document]
        parts.append({"url": "validationMode", "valueCoding": {
            "system": VALIDATION_MODE_SYSTEM, "code": document.code, "display": document.label}})
    if reliability.validated is not None:
        parts.append({"url": "validationDate", "valueDate": reliability.validated.isoformat()})
    return {"url": RELIABILITY_URL, "extension": parts}


def reliability_of(resource: Mapping[str, Any]) -> IdentityReliability | None:
    """The identity-reliability extension of a Patient, if it carries one; an unknown
    status code is read as provisoire (the least trust), never as qualified."""
    extension = _extension(resource, RELIABILITY_URL)
    if extension is None:
        return None
    status, document, validated = PROVISOIRE, None, None
    for part in extension.get("extension") or ():
        if not isinstance(part, Mapping):
            continue
        coding = part.get("valueCoding") if isinstance(part.get("valueCoding"), Mapping) else {}
        if part.get("url") == "identityStatus":
            status = (STATUS_OF_CODE.get(str(coding.get("code")), PROVISOIRE)
                      if coding.get("system") == IDENTITY_STATUS_SYSTEM else PROVISOIRE)
        elif part.get("url") == "validationMode":
            known = DOCUMENT_OF_CODE.get(str(coding.get("code")))
            document = known.key if known is not None else None
        elif part.get("url") == "validationDate":
            try:
                validated = dt.date.fromisoformat(str(part.get("valueDate")))
            except ValueError:
                validated = None
    return IdentityReliability(status, document, validated)
