"""The visit's copy of fetched documents (agent.core.viewing.Fetched): bounded, least
recently used out first, a document larger than the bound never kept."""

from __future__ import annotations

from agent.core.viewing import Fetched


def test_the_copy_keeps_what_fits_and_drops_the_least_recently_used() -> None:
    kept = Fetched(generation=1, limit=10)
    kept.put("a", b"aaaa")
    kept.put("b", b"bbbb")
    assert kept.get("a") == b"aaaa"  # "a" used last: "b" goes first
    kept.put("c", b"cccc")
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (b"aaaa", None, b"cccc")
    kept.put("huge", b"x" * 11)
    assert kept.get("huge") is None and kept.get("a") == b"aaaa"
