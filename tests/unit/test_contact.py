"""The patient's email address given at DMP creation: one rule for every view, checked
before anything is sent, never looser than the host's."""

from __future__ import annotations

import pytest

from agent.core.contact import MAX_EMAIL, checked_email
from agent.errors import AgentError


@pytest.mark.parametrize(("given", "kept"), [
    ("claire.martin@example.fr", "claire.martin@example.fr"),
    ("  Claire.Martin@Example.FR \n", "Claire.Martin@Example.FR"),  # trimmed, case kept
    ("c.martin+dmp@mail.sous-domaine.example.org", "c.martin+dmp@mail.sous-domaine.example.org"),
    ("o'brien_j@x.io", "o'brien_j@x.io"),
    ("a@b.co", "a@b.co"),
    ("x" * 64 + "@" + "d" * 60 + ".fr", "x" * 64 + "@" + "d" * 60 + ".fr"),
])
def test_one_plain_address_is_kept_trimmed(given: str, kept: str) -> None:
    assert checked_email(given) == kept


def test_no_address_is_none() -> None:
    assert checked_email(None) is None


LONGEST = "a" * 64 + "@" + "b" * 61 + "." + "c" * 61 + "." + "d" * 62 + ".fr"


@pytest.mark.parametrize("given", [
    "", "   ",                                  # empty
    "claire.martin",                            # no @
    "claire@localhost",                         # no dot in the domain
    "@example.fr", "claire@",                   # a part missing
    "claire@@example.fr", "a@b@example.fr",     # more than one @
    "claire martin@example.fr",                 # a space
    "a@example.fr, b@example.fr",               # a list
    "a@example.fr;b@example.fr",
    "Claire <claire@example.fr>",               # a display name
    "claire@example.fr\r\nBcc: x@evil.fr",      # header injection
    "claire\x00@example.fr", "claire@exa\x1bmple.fr", "claire\u202e@example.fr",
    "claire..martin@example.fr", ".claire@example.fr", "claire.@example.fr",
    "claire@example..fr", "claire@-example.fr", "claire@example-.fr", "claire@example.fr.",
    "élodie@example.fr", "claire@exämple.fr",  # not ASCII (the host sends no SMTPUTF8)
    "x" * 65 + "@example.fr",                  # local part over 64
    LONGEST + "x",                              # over 254
])
def test_anything_else_is_a_bad_email_usage_error(given: str) -> None:
    with pytest.raises(AgentError) as refused:
        checked_email(given)
    error = refused.value
    assert error.code == "bad-email" and error.status == 400 and error.usage
    assert str(error).startswith("Adresse électronique du patient : ")
    if given.strip():
        assert given.strip() not in str(error)  # never repeated (logs, terminals)


def test_the_longest_address_is_accepted() -> None:
    assert len(LONGEST) == MAX_EMAIL == 254
    assert checked_email(LONGEST) == LONGEST


def test_whatever_the_agent_accepts_the_host_accepts_too() -> None:
    host = pytest.importorskip("host.notify_events")
    for address in ("claire.martin@example.fr", "c.martin+dmp@mail.example.org",
                    "o'brien_j@x.io", LONGEST):
        assert host.checked_email(checked_email(address)) == address
