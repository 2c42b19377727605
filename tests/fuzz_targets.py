"""Fuzz targets for the card parsers, shared by the short test run and `bench/fuzz_parsers.py`,
and the seeds of the document wire's fuzz (the PDSm guide's examples, `pdsm_bundles`, mutated
by `mutate_json`: tests/unit/test_wire_mhd.py, `bench/fuzz_host.py`).

Each target takes hostile bytes and must either return or raise a `CardError`; anything else
(another exception, a hang) is a defect. The profile targets replay a real emulator session
with one response replaced by the fuzzed bytes, so the mutations reach the deep parsers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache
from typing import Any

from hypothesis import strategies as st

from cardreader import cps_data, iso7816, pkcs15, tlv, vitale
from cardreader.apdu import ApduProtocol, ResponseApdu
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection
from cardreader.virtual.vitale import VirtualVitale
from cardreader.vitale import Vitale2Profile

Target = Callable[[bytes], object]


class Spliced:
    """Replays a recorded session but answers exchange ``index`` with ``hostile`` bytes."""

    atr = b""

    def __init__(self, responses: list[bytes], index: int, hostile: bytes) -> None:
        self.responses = responses
        self.index = index
        self.hostile = hostile
        self.position = 0

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        position = self.position
        self.position += 1
        if position == self.index:
            response = ResponseApdu.parse(self.hostile)
            return response.data, response.sw
        if position < len(self.responses):
            raw = self.responses[position]
            return raw[:-2], int.from_bytes(raw[-2:], "big")
        return b"", 0x6A82  # the session went elsewhere after the mutation

    def close(self) -> None:
        pass


def _cps_session(protocol: ApduProtocol) -> None:
    card = CpsCard(protocol)
    card.read_identity()
    card.pin_tries_left()
    card.certificate(CpsKey.AUTHENTICATION)
    card.certificate(CpsKey.SIGNATURE)


def _vitale_session(protocol: ApduProtocol) -> None:
    Vitale2Profile(protocol).read()


@cache
def recorded_sessions() -> dict[str, list[bytes]]:
    """The responses of one clean read of each card kind (the corpus to mutate)."""
    sessions: dict[str, list[bytes]] = {}
    cps = DirectConnection(VirtualCps.from_profile("gp"))
    _cps_session(ApduProtocol(cps))
    sessions["cps"] = [response for _, response in cps.exchanges]
    family = DirectConnection(VirtualVitale.from_profile("family"))
    _vitale_session(ApduProtocol(family))
    sessions["vitale"] = [response for _, response in family.exchanges]
    return sessions


def corpus() -> list[bytes]:
    return [r for responses in recorded_sessions().values() for r in responses]


def _profile_target(kind: str, session: Callable[[ApduProtocol], None]) -> Target:
    def run(data: bytes) -> None:
        responses = recorded_sessions()[kind]
        # The first byte picks which exchange is replaced; the rest is the hostile answer.
        index = data[0] % len(responses) if data else 0
        session(ApduProtocol(Spliced(responses, index, data[1:])))

    return run


TARGETS: dict[str, Target] = {
    "response": ResponseApdu.parse,
    "tlv": tlv.parse_all,
    "fcp": iso7816.fcp_size,
    "pkcs15-odf": pkcs15.parse_odf,
    "pkcs15-tokeninfo": pkcs15.parse_token_info,
    "pkcs15-prkdf": pkcs15.parse_prkdf,
    "pkcs15-cdf": pkcs15.parse_cdf,
    "pkcs15-aodf": pkcs15.parse_aodf,
    "pkcs15-dodf": pkcs15.parse_dodf,
    "cps-data": cps_data.decode_id_card,
    "vitale-identity": vitale.parse_identity_file,
    "vitale-nir": vitale.parse_nir_file,
    "vitale-extra": vitale.parse_extra_file,
    "cps-profile": _profile_target("cps", _cps_session),
    "vitale-profile": _profile_target("vitale", _vitale_session),
}


def mutate(seed: bytes, rng: random.Random) -> bytes:
    """A mutation of a real response: flips, cuts, duplications, length-byte edits."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        if choice == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:
            del data[rng.randrange(len(data)) :]
        elif choice == 2 and data:
            i = rng.randrange(len(data))
            data[i:i] = data[i : i + rng.randint(1, 16)]
        elif choice == 3 and data:
            data[rng.randrange(len(data))] = rng.choice((0x00, 0x7F, 0x80, 0x81, 0x82, 0xFF))
        elif choice == 4:
            data += rng.randbytes(rng.randint(1, 8))
        elif data:
            i = rng.randrange(len(data))
            data[i : i + 2] = rng.choice((b"\x90\x00", b"\x61\x10", b"\x6c\x05", b"\x63\xc1"))
    return bytes(data)


def hostile_bytes() -> st.SearchStrategy[bytes]:
    """Random bytes, and mutations of the recorded real responses."""
    seeds = corpus()
    mutated = st.builds(
        lambda seed, n: mutate(seed, random.Random(n)),
        st.sampled_from(seeds),
        st.integers(min_value=0, max_value=2**32),
    )
    return st.one_of(st.binary(max_size=512), mutated)


# -- the document wire: the PDSm guide's own examples as seeds ------------------------------------


def pdsm_bundles() -> list[dict[str, Any]]:
    """The guide's examples assembled as ITI-65 bundles (tests/conformance): as published
    (refused: another content's size and hash), corrected, and a replacement by a 2.25 OID."""
    from tests.conformance.support import comprehensive_bundle, replace_bundle

    return [comprehensive_bundle(literal=True), comprehensive_bundle(),
            replace_bundle("urn:uuid:12345678-abcd-1234-abcd-1234567890ab", b"%PDF-1.4 x")]


def mutate_json(document: Any, rng: random.Random, values: list[Any]) -> Any:
    """A structural mutation of a FHIR resource: a node deleted, replaced by one of
    ``values``, a list item duplicated, or a reference string pointed elsewhere — the shapes a
    confused or hostile client sends."""
    nodes: list[tuple[Any, Any]] = []  # (container, key) of every node
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, child in items:
            nodes.append((node, key))
            stack.append(child)
    references = [c[k] for c, k in nodes if k in ("reference", "url", "fullUrl")
                  and isinstance(c[k], str)]
    for _ in range(rng.randint(1, 3)):
        if not nodes:
            break
        container, key = rng.choice(nodes)
        choice = rng.randrange(4)
        try:
            if choice == 0:
                del container[key]
            elif choice == 1:
                container[key] = rng.choice(values)
            elif choice == 2 and isinstance(container, list):
                container.insert(key, container[key])
            elif references:
                container[key] = rng.choice(references)
        except (IndexError, KeyError):
            continue  # a node removed by an earlier mutation
    return document
