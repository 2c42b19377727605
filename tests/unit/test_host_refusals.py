"""The host's refusals in the agent's words (agent/client/refusals.py, docs/i18n.md): every
code the host can emit has a wording, each family says one language, and an unknown code
shows the host's sentence in the user's language only."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from agent import i18n
from agent.client.refusals import FAMILIES, REFUSALS, host_text, refusal_text, worded_codes
from agent.client.session import outcome_of

ROOT = Path(__file__).resolve().parents[2]
# The calls whose argument at this index is a refusal code the host sends (host/errors.py and
# the wire's errors, which the host relays with their code).
CODE_ARGUMENT = {"HostError": 1, "bad_request": 0, "forbidden": 0, "not_found": 0,
                 "operation_outcome": 0, "SessionRefused": 0, "conflict": 0, "refused": 0,
                 "refuse_control_characters": 2, "WireError": 0, "DsgError": 0,
                 "SearchError": 0, "CdaError": 0, "_match": 2}
# Dictionaries keyed by code (the session's refusals, the signature document's).
CODE_TABLES = {"MESSAGES", "_DOCUMENT_REFUSALS"}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def host_codes() -> set[str]:
    """The refusal codes written in the host's and the wire's source, and the access rules'
    refusals (the host sends `ReasonCode.code` lowered, dashed)."""
    from policies.reasons import ReasonCode

    found = {reason.code.lower().replace("_", "-") for reason in ReasonCode
             if not reason.allows}
    sources = [*(ROOT / "host").rglob("*.py"), *(ROOT / "wire").rglob("*.py")]
    for path in sources:
        if "portal" in path.relative_to(ROOT).parts:  # the patient's web portal, not the API
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in CODE_ARGUMENT:
                index = CODE_ARGUMENT[str(_name(node.func))]
                argument = next((k.value for k in node.keywords if k.arg == "code"),
                                node.args[index] if len(node.args) > index else None)
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.add(argument.value)
            elif isinstance(node, ast.FunctionDef):  # a code a function defaults to or returns
                named = node.args.args[-len(node.args.defaults):] if node.args.defaults else []
                for parameter, default in zip(named, node.args.defaults, strict=True):
                    if parameter.arg == "code" and isinstance(default, ast.Constant):
                        found.add(str(default.value))  # refuse_control_characters' default
                if node.name == "_revoked_now":  # host/actors.py: the code it returns
                    returned = [r.value for r in ast.walk(node) if isinstance(r, ast.Return)]
                    found |= {r.value for r in returned
                              if isinstance(r, ast.Constant) and isinstance(r.value, str)}
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                    _name(target) in CODE_TABLES for target in node.targets):
                found |= {key.value for key in node.value.keys
                          if isinstance(key, ast.Constant) and isinstance(key.value, str)}
    # The wire's InsError carries sentences, not codes; the agent reads those answers itself.
    return {code for code in found if " " not in code}


def test_every_refusal_code_the_host_can_emit_has_the_agents_words() -> None:
    codes = host_codes()
    assert {"dossier-absent", "no-authorisation", "blocked", "break-the-glass-opted-out",
            "identity-not-qualified", "signature-wrong-signer", "card-cert-revoked",
            "psc-token-expired", "session-expired", "card-revoked", "control-characters",
            "unknown-type", "cda-schematron", "not-json"} <= codes  # the collector sees all
    assert sorted(codes - worded_codes()) == []


def test_a_code_has_one_wording_and_every_wording_has_its_french() -> None:
    specific, in_families = set(REFUSALS), [c for codes in FAMILIES.values() for c in codes]
    assert len(in_families) == len(set(in_families))
    assert specific.isdisjoint(in_families)
    french = i18n.catalogue("fr").translations
    for wording in [*REFUSALS.values(), *FAMILIES]:
        assert french.gettext(wording) != wording, wording


@pytest.mark.parametrize(("language", "expected"), [
    ("fr", "Ce patient n'a pas de DMP."), ("en", "This patient has no DMP.")])
def test_a_refusal_the_professional_meets_is_said_once(language: str, expected: str) -> None:
    i18n.use_language(language)
    try:
        assert refusal_text("dossier-absent", "Ce patient n'a pas de DMP. / This patient has "
                            "no DMP.") == expected
        blocked = refusal_text("blocked", "x / y")
        assert blocked == ("Le patient vous a interdit l'accès à son DMP." if language == "fr"
                           else "The patient has blocked you from their DMP.")
    finally:
        i18n.use_language("fr")


@pytest.mark.parametrize(("language", "document", "typed", "request_"), [
    ("fr", "L'hôte a refusé le document : Type de document inconnu",
     "L'hôte a refusé ce qui a été saisi : Motif de fermeture requis",
     "L'hôte a refusé la requête comme mal formée (not-json) : Corps JSON illisible"),
    ("en", "The host refused the document: Unknown document type X (type)",
     "The host refused what was typed: A closure reason is required",
     "The host refused the request as malformed (not-json): Unreadable body"),
])
def test_a_family_says_the_hosts_detail_in_the_language(language: str, document: str,
                                                        typed: str, request_: str) -> None:
    i18n.use_language(language)
    try:
        assert refusal_text("unknown-type", "Type de document inconnu / unknown document "
                            "type X (type)") == document
        assert refusal_text("reason-required", "Motif de fermeture requis / a closure "
                            "reason is required") == typed
        assert refusal_text("not-json", "Corps JSON illisible / unreadable body") == request_
    finally:
        i18n.use_language("fr")


def test_an_unknown_code_shows_the_hosts_part_in_the_language_split_safely() -> None:
    doubled = "Nouveau refus / a new refusal"
    assert host_text(doubled, "fr") == "Nouveau refus"
    assert host_text(doubled, "en") == "A new refusal"
    for as_is in ("sex: M or F", "format A / B / C", " / only one side", "texte seul"):
        assert host_text(as_is, "en") == host_text(as_is, "fr") == as_is.strip()
    assert refusal_text("newer-host-code", doubled) == "Nouveau refus"  # French by default


def test_the_client_reads_the_outcome_and_words_it_keeping_the_code() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "forbidden",
        "details": {"coding": [{"system": "urn:dmp:host:error", "code": "dossier-absent"}],
                    "text": "Ce patient n'a pas de DMP. / This patient has no DMP."}}]}
    assert outcome_of(httpx.Response(403, json=outcome)) == ("dossier-absent",
                                                             "Ce patient n'a pas de DMP.")
    assert outcome_of(httpx.Response(502, text="Bad gateway")) == ("host-error",
                                                                   "Bad gateway")
