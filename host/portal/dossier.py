"""What the portal reads of the patient's own dossier beyond host/patient.py: its state and
settings, and the integrity of its access history. Decided and traced like the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies import Action

from .. import access_chain, notify_events
from ..dossiers.lifecycle import dossier_row
from ..guard import Guard, check_patient


@dataclass(frozen=True)
class Summary:
    status: str  # open / closed
    created_at: Any
    closed_at: Any
    closure_reason: str | None
    retention_until: Any
    break_the_glass: bool
    regulation_centre: bool
    emergency_sees_masked: bool
    email: str | None
    channel: str


def summary(guard: Guard, ins: str) -> Summary:
    """The dossier's state, consents and notification channel (decided as the existence
    test the patient may always make, open or closed; traced as portal_home)."""
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.TEST_EXISTENCE,
                      log_action="portal_home")
        row = dossier_row(connection, ins)
        contact = notify_events.contact(connection, ins)
    assert row is not None  # check_patient refuses an absent dossier
    return Summary(
        status=row.status, created_at=row.created_at, closed_at=row.closed_at,
        closure_reason=row.closure_reason, retention_until=row.retention_until,
        break_the_glass=row.consent_break_the_glass,
        regulation_centre=row.consent_regulation_centre,
        emergency_sees_masked=row.consent_emergency_sees_masked,
        email=None if contact is None else contact.email,
        channel="none" if contact is None else contact.channel,
    )


def verify_history(guard: Guard, ins: str) -> access_chain.Verdict:
    """Walk the hash chain of the patient's access history (decided as reading it)."""
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.READ_ACCESS_LOG,
                      log_action="verify_access_log")
        return access_chain.verify(connection, ins)
