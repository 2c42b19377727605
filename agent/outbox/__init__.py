"""The deposit outbox: every deposit is first made durable here, then sent until the host
acknowledges it, exactly once, across crashes and restarts; encrypted at rest, its personal
fields purged some days after the host acknowledged them (docs/agent-outbox.md).

Items go ``pending -> sending -> done`` (acknowledged, or "already stored" by the idempotent
host), ``sending -> pending`` (network error, 5xx, 408, 429: retried with exponential
backoff) or ``sending -> failed`` (refused for good, 4xx: content and reason kept until
`Outbox.retry`).

Modules: `model` (items, outcomes, causes, labels, errors), `store` (the outbox: adds,
states, purge), `database` (the SQLite file, checked before it is trusted), `recovery`
(accounting for every file, quarantine, rebuilding from the files), `migrate` (older
schemas), `storage` (the disk: lock, free space, refusals), `sealed` (the encryption),
`keys` (where the key lives), `sender` (sending, the worker), `throttle` (the pace the DMP's
rule sets: fewer than 5 deposits per second per establishment), `wake` (what wakes the worker:
a session opening, the host answering again), `report` (what people are told: why a
deposit waits, the quarantine).
"""

from agent.outbox.keys import (
    KeyringKeyStore,
    KeyStore,
    KeyStores,
    SealedFileKeyStore,
    open_key,
    outbox_keys,
)
from agent.outbox.model import (
    Cause,
    Counts,
    Description,
    Item,
    ItemState,
    OutboxBusyError,
    OutboxDamagedError,
    OutboxError,
    OutboxFullError,
    OutboxKeyError,
    OutboxStorageError,
    OutboxUnreadableError,
    Outcome,
    SendResult,
)
from agent.outbox.recovery import QUARANTINE, QuarantineReport, Repair, quarantine_report
from agent.outbox.report import Waiting, waiting
from agent.outbox.sender import (
    OutboxWorker,
    PassReport,
    Progress,
    RetryPolicy,
    Send,
    Sender,
    structure_of,
)
from agent.outbox.store import (
    BUNDLES,
    CONTENT_KEY,
    CONTENT_SUFFIX,
    CONTENTS,
    DEFAULT_PURGE_AFTER,
    LOCK_FILE,
    SCHEMA_VERSION,
    Outbox,
    open_outbox,
)
from agent.outbox.throttle import Throttle, ThrottleStatus, process_throttle
from agent.outbox.wake import OutboxWake

__all__ = [
    "BUNDLES",
    "CONTENTS",
    "CONTENT_KEY",
    "CONTENT_SUFFIX",
    "DEFAULT_PURGE_AFTER",
    "LOCK_FILE",
    "QUARANTINE",
    "SCHEMA_VERSION",
    "Cause",
    "Counts",
    "Description",
    "Item",
    "ItemState",
    "KeyStore",
    "KeyStores",
    "KeyringKeyStore",
    "Outbox",
    "OutboxBusyError",
    "OutboxDamagedError",
    "OutboxError",
    "OutboxFullError",
    "OutboxKeyError",
    "OutboxStorageError",
    "OutboxUnreadableError",
    "OutboxWake",
    "OutboxWorker",
    "Outcome",
    "PassReport",
    "Progress",
    "QuarantineReport",
    "Repair",
    "RetryPolicy",
    "SealedFileKeyStore",
    "Send",
    "SendResult",
    "Sender",
    "Throttle",
    "ThrottleStatus",
    "Waiting",
    "open_key",
    "open_outbox",
    "outbox_keys",
    "process_throttle",
    "quarantine_report",
    "structure_of",
    "waiting",
]
