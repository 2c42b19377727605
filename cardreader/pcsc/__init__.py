"""The PC/SC adapter: the only part of the card layer that imports pyscard.

`PcscConnection` implements the one-method `Connection` over a reader; `Monitor` turns
`SCardGetStatusChange` into reader and card events.
"""

from .connection import (
    SERVICE_GONE,
    PcscConnection,
    error_for,
    establish_context,
    list_readers,
    release_context,
    wait_for_card,
)
from .monitor import EventKind, Monitor, SlotEvent

__all__ = [
    "SERVICE_GONE",
    "EventKind",
    "Monitor",
    "PcscConnection",
    "SlotEvent",
    "error_for",
    "establish_context",
    "list_readers",
    "release_context",
    "wait_for_card",
]
