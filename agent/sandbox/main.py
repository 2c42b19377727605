"""The sandbox: everything on one machine, played end to end with readable output.

It starts a real pcscd with the vpcd virtual reader and inserts virtual cards through the
same mechanism as `dmp-vcard`. First the card layer on its own: the monitor sees the cards,
the GP's CPS is read, its PIN is checked (a wrong try first, to show the counter), it signs
with both keys, and the patient's Vitale card is read and swapped. Then the reference host
starts in its own process and the daily scenarios run end to end (`agent.sandbox.scenarios`).
Nothing is left running at the end unless ``keep`` is set.

Run it through `scripts/sandbox`, which gives it private namespaces so it never meets a
pcscd already serving real readers.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from agent.card_words import card_error_text, event_text, localized
from agent.core.cards_view import describe
from agent.i18n import _
from agent.sandbox.scenarios import Sandbox, play
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.errors import WrongPinError
from cardreader.inspect import inspect_reader
from cardreader.pcsc import (
    EventKind,
    Monitor,
    PcscConnection,
    SlotEvent,
    list_readers,
    wait_for_card,
)
from cardreader.virtual import cli as vcard
from cardreader.virtual.pcscd import Pcscd

HARNESS_PIN = "1234"  # the virtual cards' PIN; typed by the harness, never printed


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


@contextlib.contextmanager
def virtual_cards(state: Path) -> Iterator[None]:
    """Remove every virtual card at the end, whatever happened."""
    try:
        yield
    finally:
        for slot in (0, 1):
            with contextlib.redirect_stdout(None):
                vcard.remove(slot, state / "demo-cards")


def _insert(profile: str, slot: int, state: Path, port: int) -> str:
    reader = list_readers()[slot]
    wait_for_card(reader, present=False)
    with contextlib.redirect_stdout(None):  # the virtual cards' own words: ours below
        if vcard.insert(profile, slot, state / "demo-cards", None, port) != 0:
            raise SystemExit(f"sandbox: could not insert {profile}")
    print(_("{card} inserted in reader {slot}").format(card=profile, slot=slot))
    wait_for_card(reader)
    return reader


def _wait_event(events: queue.Queue[SlotEvent], kind: EventKind, reader: str) -> SlotEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        print("   " + _("event: {event}").format(event=event_text(event)))
        if event.kind is kind and event.reader == reader:
            return event
    raise SystemExit(f"sandbox: no {kind.value} event from {reader}")


def run(*, keep: bool = False, state_dir: Path | None = None) -> int:
    with contextlib.ExitStack() as stack:
        state = state_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        state.mkdir(parents=True, exist_ok=True)
        (state / "ready").unlink(missing_ok=True)
        step(_("pcscd with the vpcd virtual reader (two slots)"))
        pcscd = stack.enter_context(Pcscd())
        readers = list_readers()
        print("   " + "\n   ".join(readers))
        events: queue.Queue[SlotEvent] = queue.Queue()
        stack.enter_context(virtual_cards(state))
        monitor = stack.enter_context(Monitor(events.put))
        monitor.ready.wait(5)

        step(_("the GP inserts their CPS; the patient's Vitale card goes in the second "
               "reader"))
        cps_reader = _insert("cps:gp", 0, state, pcscd.port)
        _wait_event(events, EventKind.CARD_INSERTED, cps_reader)
        vitale_reader = _insert("vitale:family", 1, state, pcscd.port)
        _wait_event(events, EventKind.CARD_INSERTED, vitale_reader)
        for reader in readers:
            print("\n".join("   " + line for line in describe(localized(inspect_reader(reader)))))

        step(_("PIN: one wrong try, then the right one (the PIN itself is never shown)"))
        with PcscConnection(cps_reader) as connection:
            card = CpsCard(ApduProtocol(connection))
            identity = card.read_identity()
            try:
                card.verify_pin("0000")
            except WrongPinError as exc:
                print(f"   {card_error_text(exc)}")
            card.verify_pin(HARNESS_PIN)
            print("   " + _("PIN accepted; tries left: {tries}").format(
                tries=card.pin_tries_left()))
            for situation in card.read_situations():
                print("   " + _("practice situation: {name} ({id})").format(
                    name=situation.structure_name, id=situation.structure_id))

            step(_("the card signs with each key; signatures checked against its "
                   "certificates"))
            message = b"challenge from the host + session public key + workstation + time"
            for key in CpsKey:
                signature = card.sign(key, message)
                public_key = card.certificate(key).public_key()
                assert isinstance(public_key, rsa.RSAPublicKey)
                public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                print("   " + _("{key}: {bits}-bit signature verified").format(
                    key=key.value, bits=len(signature) * 8))
        print("   " + _("{first} {last} ({id}): card OK").format(
            first=identity.first_name, last=identity.last_name, id=identity.id_nat_ps))

        step(_("next patient: the Vitale card is swapped"))
        with contextlib.redirect_stdout(None):
            vcard.remove(1, state / "demo-cards")
        _wait_event(events, EventKind.CARD_REMOVED, vitale_reader)
        _insert("vitale:single", 1, state, pcscd.port)
        _wait_event(events, EventKind.CARD_INSERTED, vitale_reader)
        swapped = localized(inspect_reader(vitale_reader))
        print("\n".join("   " + line for line in describe(swapped)))

        for slot in (0, 1):
            with contextlib.redirect_stdout(None):
                vcard.remove(slot, state / "demo-cards")
        monitor.stop()

        def hold(sandbox: Sandbox) -> None:
            step(_("kept running: host {url}; try `dmp-agent cards`, `dmp-vcard --state-dir "
                   "{cards} swap ...`; stop with Ctrl-C").format(url=sandbox.host_url,
                                                                  cards=state / "cards"))
            (state / "ready").touch()
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()

        play(state, pcscd.port, step, keep=hold if keep else None)
        step(_("sandbox done: cards removed, pcscd stopped"))
    return 0
