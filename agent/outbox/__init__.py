"""The deposit outbox: every deposit is first made durable here, then sent until the host
acknowledges it, exactly once, across crashes and restarts; encrypted at rest, its personal
fields purged some days after the host acknowledged them (docs/agent-outbox.md).

Items go ``pending -> sending -> done`` (acknowledged, or "already stored" by the idempotent
host), ``sending -> pending`` (network error, 5xx, 408, 429: retried with exponential
backoff) or ``sending -> failed`` (refused for good, 4xx: content and reason kept until
`Outbox.retry`).

Modules: `model` (items, outcomes, errors), `store` (the database and its files),
`sealed` (the encryption), `keys` (where the key lives), `sender` (sending, the worker).
"""

from .keys import (
    KeyringKeyStore,
    KeyStore,
    KeyStores,
    SealedFileKeyStore,
    open_key,
    outbox_keys,
)
from .model import (
    Counts,
    Item,
    ItemState,
    OutboxBusyError,
    OutboxDamagedError,
    OutboxError,
    OutboxKeyError,
    Outcome,
    SendResult,
)
from .sender import OutboxWorker, PassReport, Progress, RetryPolicy, Send, Sender
from .store import (
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

__all__ = [
    "BUNDLES",
    "CONTENTS",
    "CONTENT_KEY",
    "CONTENT_SUFFIX",
    "DEFAULT_PURGE_AFTER",
    "LOCK_FILE",
    "SCHEMA_VERSION",
    "Counts",
    "Item",
    "ItemState",
    "KeyStore",
    "KeyStores",
    "KeyringKeyStore",
    "Outbox",
    "OutboxBusyError",
    "OutboxDamagedError",
    "OutboxError",
    "OutboxKeyError",
    "OutboxWorker",
    "Outcome",
    "PassReport",
    "Progress",
    "RetryPolicy",
    "SealedFileKeyStore",
    "Send",
    "SendResult",
    "Sender",
    "open_key",
    "open_outbox",
    "outbox_keys",
]
