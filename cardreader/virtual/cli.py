"""`dmp-vcard`: insert, remove and swap virtual cards in the vpcd slots of a running pcscd.

A developer's and tests' tool: it speaks English only (docs/i18n.md), one line per event.

Each inserted card is a small background process (`dmp-vcard serve`) connected to one vpcd
slot; removing the card stops that process, which pcscd sees as the card pulled out. Card
state that a real card keeps (its keys, its PIN try counter) lives in the state directory,
so a card blocked by wrong PINs is still blocked when it is inserted again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from ..errors import CardError
from ..pcsc import list_readers, wait_for_card
from .cps import VirtualCps
from .cps_profiles import CPS_PROFILES
from .faulty import UnknownCard
from .pki import TestHealthCA
from .processes import pid_alive, reap
from .vitale import VirtualVitale
from .vitale_profiles import PROFILES as VITALE_PROFILES
from .vpcd import FIRST_SLOT_PORT, VirtualCard, VpcdLink, slot_port

DEFAULT_STATE = platformdirs.user_state_path("dmp-agent") / "virtual-cards"


def profile_names() -> list[str]:
    return (
        [f"cps:{name}" for name in CPS_PROFILES]
        + [f"vitale:{name}" for name in VITALE_PROFILES]
        + ["unknown"]
    )


def build_card(profile: str, state_dir: Path, ca_dir: Path | None = None) -> VirtualCard:
    """The emulator for a profile name such as ``cps:gp`` or ``vitale:family``."""
    family, _, name = profile.partition(":")
    if family == "cps" and name in CPS_PROFILES:
        return VirtualCps.from_profile(
            name, ca=load_ca(state_dir, ca_dir), state_dir=state_dir / "cps" / name
        )
    if family == "vitale" and name in VITALE_PROFILES:
        return VirtualVitale.from_profile(name)
    if profile == "unknown":
        return UnknownCard()
    raise SystemExit(
        f"dmp-vcard: unknown profile {profile!r}; choose among: {', '.join(profile_names())}"
    )


def load_ca(state_dir: Path, ca_dir: Path | None) -> TestHealthCA:
    """The test health CA that issues the virtual CPS certificates (created on first use)."""
    directory = ca_dir or state_dir / "health-ca"
    password = os.environ.get("DMP_PKI_PASSPHRASE", "").encode() or None
    try:
        return TestHealthCA.load(directory, password)
    except FileNotFoundError:
        if ca_dir is not None:
            raise SystemExit(f"dmp-vcard: no CA certificate and key in {ca_dir}") from None
        ca = TestHealthCA.create()
        ca.save(directory)
        return ca


def _pidfile(state_dir: Path, slot: int) -> Path:
    return state_dir / f"slot-{slot}.pid"


def _holder(state_dir: Path, slot: int) -> tuple[int, str] | None:
    """(pid, profile) of the card process serving ``slot``, if it is alive."""
    path = _pidfile(state_dir, slot)
    try:
        pid_text, profile = path.read_text().split(maxsplit=1)
        pid = int(pid_text)
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if not pid_alive(pid):
        path.unlink(missing_ok=True)
        return None
    return pid, profile.strip()


def serve(profile: str, slot: int, state_dir: Path, ca_dir: Path | None, base_port: int) -> int:
    card = build_card(profile, state_dir, ca_dir)
    link = VpcdLink(card, slot_port(slot, base_port), stay_inserted=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        link.start()
    except ConnectionError as exc:
        print(f"dmp-vcard: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"inserted {profile} in slot {slot}", flush=True)
    done.wait()
    link.stop()
    return 0


def insert(
    profile: str, slot: int, state_dir: Path, ca_dir: Path | None, base_port: int
) -> int:
    held = _holder(state_dir, slot)
    if held is not None:
        print(f"dmp-vcard: slot {slot} already holds {held[1]}: remove it or use swap",
              file=sys.stderr)
        return 1
    build_card(profile, state_dir, ca_dir)  # fail here, in the foreground, on a bad profile
    state_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cardreader.virtual.cli", "--state-dir", str(state_dir),
               "--base-port", str(base_port)]
    if ca_dir is not None:
        command += ["--ca", str(ca_dir)]
    command += ["serve", profile, "--slot", str(slot)]
    log = state_dir / f"slot-{slot}.log"
    with open(log, "wb") as errors:
        # The card process must not hold our stderr open: a caller reading it to the end
        # (a script, a test) would wait for the card to be removed.
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=errors,
            start_new_session=True, text=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    process.stdout.close()
    if not line.startswith("inserted"):
        process.wait(timeout=10)
        print(f"dmp-vcard: the card could not be inserted:\n{log.read_text()}", file=sys.stderr)
        return 1
    _pidfile(state_dir, slot).write_text(f"{process.pid} {profile}\n")
    reader = vpcd_reader(slot)
    # pcscd notices a vpcd card at its next presence poll (up to ~0.4 s): say "inserted"
    # only once the reader reports it, so the next command finds it there.
    if reader is not None and not wait_for_card(reader, timeout=5):
        print(f"dmp-vcard: pcscd does not report the card in {reader}", file=sys.stderr)
        return 1
    print(f"{profile} inserted in slot {slot}")
    return 0


def vpcd_reader(slot: int) -> str | None:
    """The PC/SC name of vpcd slot ``slot`` ("<name> 00 0<slot>"), if pcscd lists it."""
    try:
        readers = list_readers()
    except CardError:
        return None
    for reader in readers:
        if "Virtual" in reader and reader.endswith(f" {slot:02d}"):
            return reader
    return None


def remove(slot: int, state_dir: Path) -> int:
    held = _holder(state_dir, slot)
    if held is None:
        print(f"slot {slot}: already empty")
        return 0
    pid, profile = held
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # Reap it if this process started it (the sandbox does), else it stays a zombie.
        if reap(pid) or not pid_alive(pid):
            break
        time.sleep(0.02)
    _pidfile(state_dir, slot).unlink(missing_ok=True)
    reader = vpcd_reader(slot)
    if reader is not None:
        wait_for_card(reader, present=False, timeout=5)
    print(f"{profile} removed from slot {slot}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmp-vcard",
        description=(
            "Virtual cards for tests and the sandbox (a developer's tool, in English): "
            "insert, remove or swap a virtual CPS or Vitale card in a vpcd slot of the running "
            "pcscd (Debian vsmartcard-vpcd)."
        ),
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE,
                        help=f"where card keys and PIN counters live (default {DEFAULT_STATE})")
    parser.add_argument("--ca", type=Path, default=None,
                        help="directory with the health CA (cert + key) that issues CPS certs")
    parser.add_argument("--base-port", type=int, default=FIRST_SLOT_PORT,
                        help="vpcd port of slot 0 (default %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("profiles", help="list the ready-made cards")
    commands.add_parser("status", help="say which slot holds which virtual card")
    for name, text in (("insert", "insert a card"), ("swap", "replace the card in a slot"),
                       ("serve", "serve a card in the foreground until Ctrl-C")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("profile", help="e.g. cps:gp, vitale:family (see `profiles`)")
        sub.add_argument("--slot", type=int, default=0, help="vpcd slot (default 0)")
    rm = commands.add_parser("remove", help="pull the card out of a slot")
    rm.add_argument("--slot", type=int, default=0)
    args = parser.parse_args(argv)
    state: Path = args.state_dir
    if args.command == "profiles":
        print("\n".join(profile_names()))
        return 0
    if args.command == "status":
        for slot in (0, 1):
            held = _holder(state, slot)
            print(f"slot {slot}: {held[1] if held else '(empty)'}")
        return 0
    if args.command == "serve":
        return serve(args.profile, args.slot, state, args.ca, args.base_port)
    if args.command == "insert":
        return insert(args.profile, args.slot, state, args.ca, args.base_port)
    if args.command == "remove":
        return remove(args.slot, state)
    if args.command == "swap":
        remove(args.slot, state)
        return insert(args.profile, args.slot, state, args.ca, args.base_port)
    return 2


if __name__ == "__main__":
    sys.exit(main())
