"""The card layer's reports and errors in the agent's words (agent/card_words.py): cardreader
speaks plain developer English; what a user reads is in the agent's language, once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from agent import i18n
from agent.card_words import card_error_text, event_text, localized
from cardreader import errors
from cardreader.atr import CardKind
from cardreader.inspect import CardStatus, SlotReport
from cardreader.pcsc import EventKind, SlotEvent


@pytest.fixture(params=["fr", "en"])
def language(request: pytest.FixtureRequest) -> Iterator[str]:
    i18n.use_language(request.param)
    yield request.param
    i18n.use_language("fr")


def _said(language: str, french: str, english: str) -> str:
    return french if language == "fr" else english


def test_slot_reports_are_worded_by_their_status(language: str) -> None:
    none = localized(SlotReport("r", CardStatus.NONE, message="no card"))
    assert none.message == _said(language, "aucune carte", "no card")
    reader = localized(SlotReport("r", CardStatus.READER_ERROR,
                                  message="reader unavailable (connect r): gone"))
    assert reader.message == _said(
        language, "lecteur inutilisable (débranché, ou service carte à puce arrêté)",
        "the reader cannot be used (unplugged, or the smart-card service stopped)")
    frozen = localized(SlotReport("r", CardStatus.READER_ERROR, message="frozen",
                                  error=errors.CardNotAnsweringError("r", 1.0)))
    assert frozen.message.startswith(_said(  # by its cause: take the card out, not the reader
        language, "La carte ne répond plus (r) : retirez-la", "The card stopped answering (r): "
        "take it out")), frozen.message
    unknown = localized(SlotReport("r", CardStatus.UNKNOWN, CardKind.UNKNOWN, "unknown card",
                                   message="unknown card"))
    assert (unknown.label, unknown.message) == (_said(language, "carte inconnue",
                                                      "unknown card"),) * 2
    vitale1 = localized(SlotReport("r", CardStatus.UNKNOWN, CardKind.VITALE1, "Vitale 1",
                                   message="Vitale 1: not read by this agent"))
    assert vitale1.message == _said(language, "Vitale 1 : carte non lue par cet agent",
                                    "Vitale 1: not read by this agent")
    unread = localized(SlotReport("r", CardStatus.UNKNOWN, CardKind.VITALE, "Vitale 2",
                                  message="this Vitale card has no extra file of this project"))
    assert unread.message == _said(language, "Vitale 2 : la carte n'a pas pu être lue",
                                   "Vitale 2: the card could not be read")
    blocked = localized(SlotReport("r", CardStatus.BLOCKED, CardKind.CPS, "CPS3",
                                   message=errors.BLOCKED_CPS))
    assert blocked.message == _said(language, "Carte bloquée (code porteur)",
                                    "Card blocked (PIN)")


def test_card_errors_are_worded_by_their_type(language: str) -> None:
    cases = [
        (errors.NoServiceError("SCardEstablishContext"),
         "Le service carte à puce (pcscd) ne répond pas",
         "The smart-card service (pcscd) is not running"),
        (errors.ReaderError("reader unavailable (connect r): gone"),
         "Le lecteur est inutilisable (débranché, ou service carte à puce arrêté)",
         "The reader cannot be used (unplugged, or the smart-card service stopped)"),
        (errors.NoCardError("no card in the reader (connect r)"),
         "Aucune carte dans le lecteur", "No card in the reader"),
        (errors.TransportError("transmit: timeout"),
         "L'échange avec la carte a échoué : retirez-la et réinsérez-la",
         "The exchange with the card failed: take it out and insert it again"),
        (errors.SecurityStatusError(0x6982, "the card requires the PIN first"),
         "La carte demande d'abord le code porteur", "The card requires the PIN first"),
        (errors.ApduError(0x6F00), "La carte a refusé la commande (statut 6F00)",
         "The card refused the command (status 6F00)"),
    ]
    for error, french, english in cases:
        assert card_error_text(error) == _said(language, french, english), error


def test_a_card_event_names_an_unknown_card_in_the_language(language: str) -> None:
    event = SlotEvent(EventKind.CARD_INSERTED, "r", bytes.fromhex("3B00"), CardKind.UNKNOWN,
                      "unknown card")
    assert event_text(event) == _said(language, "[r] carte insérée : carte inconnue (ATR 3b 00)",
                                      "[r] card inserted: unknown card (ATR 3b 00)")


def test_the_card_layer_itself_speaks_one_language() -> None:
    # What cardreader says on its own (a developer's log, an unknown error's text): English.
    assert str(errors.WrongPinError(0x63C2, 2)) == "wrong PIN, 2 tries left"
    assert str(errors.CardRemovedError()) == "the card was removed"
    from cardreader.inspect import expired_text

    class Identity:  # the two dates expired_text reads
        not_before = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        not_after = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)

    assert expired_text(Identity(), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)) == (  # type: ignore[arg-type]
        "the CPS card expired on 2023-01-01: have it renewed by its issuer (ANS)")


def test_a_beneficiarys_quality_is_said_in_the_language(language: str) -> None:
    from agent.card_words import QUALITY_WORDS, quality_text
    from cardreader.virtual.vitale_profiles import PROFILES
    from cardreader.vitale_model import QUALITY_LABELS

    assert set(QUALITY_WORDS) == set(QUALITY_LABELS)  # every code the card may hold
    holder, spouse = PROFILES["family"].beneficiaries[:2]
    assert (quality_text(holder), quality_text(spouse)) == (
        ("assuré (ouvrant droit)", "conjoint") if language == "fr"
        else ("insured (entitled person)", "spouse"))
