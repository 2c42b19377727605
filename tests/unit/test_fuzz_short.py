"""A short fuzz run over every card parser: hostile bytes give a CardError or nothing else.

The long run (at least 100k inputs) is `bench/fuzz_parsers.py`.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings

from cardreader.errors import CardError
from tests.fuzz_targets import TARGETS, hostile_bytes


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_survives_hostile_bytes(name: str) -> None:
    target = TARGETS[name]

    @settings(
        max_examples=300,
        deadline=1000,  # a parser that takes a second on 512 bytes is hanging
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_bytes())
    def check(data: bytes) -> None:
        with contextlib.suppress(CardError):
            target(data)

    check()
