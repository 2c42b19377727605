"""The host's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every dossier table carries the patient's INS as the first column of its primary key and
every hot query names one patient, so the schema can be sharded by patient (Citus) without a
redesign (DESIGN.md, "Scale"). Nothing is deleted physically: statuses change. The Alembic
migrations in `host/store/migrations` create exactly these tables.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

INS = 15  # NIR or NIA (13) + key (2)
ID_NAT = 32  # idNat_PS: prefix + RPPS/ADELI; structure ids: prefix + FINESS/SIREN/SIRET


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on both backends (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: use aware UTC datetimes")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: object
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UTC = UtcDateTime()

# -- identity service (INSi-like): the reference identities the host resolves Vitale traits to
patients = Table(
    "patients",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("ins_oid", String(64), nullable=False),  # 1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test
    Column("birth_name", String(100), nullable=False),
    Column("first_names", String(200), nullable=False),  # all first names, space-separated
    Column("first_name", String(100), nullable=False),  # the one used
    Column("sex", String(1), nullable=False),  # M / F
    Column("birth_date", String(8), nullable=False),  # YYYYMMDD, as on the card (may be lunar)
    Column("birth_place", String(5), nullable=False),  # INSEE code of the commune / 99xxx
    Column("insured_nir", String(INS), nullable=True),  # the ouvrant droit's NIR on the card
    Column("birth_rank", Integer, nullable=False, default=1),
)
Index("ix_patients_traits", patients.c.birth_name, patients.c.birth_date, patients.c.sex)
Index("ix_patients_insured", patients.c.insured_nir, patients.c.birth_rank)
# The INS service's search from typed traits (host.ins.query.by_traits).
Index("ix_patients_birth", patients.c.birth_date, patients.c.sex)

# -- the DMP itself
dossiers = Table(
    "dossiers",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("status", String(10), nullable=False),  # open / closed
    Column("created_at", UTC, nullable=False),
    Column("created_by", String(ID_NAT), nullable=False),
    Column("consent_at", UTC, nullable=False),
    Column("consent_break_the_glass", Boolean, nullable=False),
    Column("consent_regulation_centre", Boolean, nullable=False),
    Column("consent_emergency_sees_masked", Boolean, nullable=False),
    Column("secret_sha256", String(64), nullable=False),  # of the patient's first-access code
    Column("closed_at", UTC, nullable=True),
    Column("closure_reason", String(200), nullable=True),
    Column("retention_until", UTC, nullable=True),
    Column("reactivated_at", UTC, nullable=True),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("id_nat_ps", String(ID_NAT), primary_key=True),
    Column("structure_id", String(ID_NAT), nullable=True),  # care team: same structure
    Column("status", String(10), nullable=False),  # valid / revoked
    Column("granted_at", UTC, nullable=True),
    Column("granted_by", String(ID_NAT), nullable=True),
    Column("expires_at", UTC, nullable=True),
    Column("revoked_at", UTC, nullable=True),
    Column("blocked", Boolean, nullable=False, default=False),  # the patient blocked this PS
    Column("blocked_at", UTC, nullable=True),
    ForeignKeyConstraint(["ins"], ["dossiers.ins"]),
)

medecins_traitants = Table(
    "medecins_traitants",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("id_nat_ps", String(ID_NAT), primary_key=True),
    Column("designated_at", UTC, nullable=False),
    Column("designated_by", String(ID_NAT), nullable=False),
    Column("ended_at", UTC, nullable=True),
    ForeignKeyConstraint(["ins"], ["dossiers.ins"]),
)

# -- documents (IHE XDS DocumentEntry / FHIR DocumentReference) and submission sets
submission_sets = Table(
    "submission_sets",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("id", String(64), primary_key=True),  # FHIR List id
    Column("unique_id", String(128), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("submitted_at", UTC, nullable=False),
    Column("author_id", String(ID_NAT), nullable=False),
    Column("structure_id", String(ID_NAT), nullable=True),
    Column("signature_sha256", String(64), nullable=True),  # of the signature document
    Column("resource", JSON, nullable=False),
    ForeignKeyConstraint(["ins"], ["dossiers.ins"]),
)
Index("ix_submission_sets_unique", submission_sets.c.ins, submission_sets.c.unique_id,
      unique=True)

documents = Table(
    "documents",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("id", String(64), primary_key=True),  # FHIR DocumentReference id (entryUUID)
    Column("unique_id", String(128), nullable=False),  # XDS uniqueId: idempotency key
    Column("version_id", Integer, nullable=False, default=1),  # meta.versionId
    Column("status", String(20), nullable=False),  # current / superseded / entered-in-error
    Column("class_code", String(16), nullable=False),
    Column("type_code", String(32), nullable=False),
    Column("format_code", String(128), nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("title", String(300), nullable=True),
    Column("language", String(10), nullable=True),
    Column("confidentiality", String(1), nullable=False, default="N"),  # N / R / V
    Column("masked", Boolean, nullable=False, default=False),  # MASQUE_PS
    Column("invisible_to_patient", Boolean, nullable=False, default=False),
    Column("visible_to_patient_from", UTC, nullable=True),
    Column("invisible_to_legal_reps", Boolean, nullable=False, default=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("facility_type", String(16), nullable=True),
    Column("practice_setting", String(16), nullable=True),
    Column("author_id", String(ID_NAT), nullable=False),
    Column("author_profession", String(8), nullable=True),
    Column("author_specialty", String(16), nullable=True),
    Column("author_structure", String(ID_NAT), nullable=True),
    Column("created_at", UTC, nullable=True),  # creationTime
    Column("service_start", UTC, nullable=True),
    Column("service_stop", UTC, nullable=True),
    Column("deposited_at", UTC, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),  # content address in the blob store
    Column("sha1_b64", String(28), nullable=False),  # FHIR Attachment.hash
    Column("submission_set_id", String(64), nullable=False),
    Column("replaces_id", String(64), nullable=True),
    Column("resource", JSON, nullable=False),  # the DocumentReference as stored
    ForeignKeyConstraint(["ins"], ["dossiers.ins"]),
)
Index("ix_documents_unique", documents.c.ins, documents.c.unique_id, unique=True)
# Search names the patient and the status, then filters: class/type/date/author.
Index("ix_documents_search", documents.c.ins, documents.c.status, documents.c.class_code,
      documents.c.created_at)
Index("ix_documents_type", documents.c.ins, documents.c.type_code)
# The default search and its pages: newest first within one patient and status.
Index("ix_documents_recent", documents.c.ins, documents.c.status, documents.c.deposited_at,
      documents.c.id)
Index("ix_documents_author", documents.c.ins, documents.c.author_id)
# Which patient holds a uniqueId (conditional PATCH by identifier alone, migration 0008).
Index("ix_documents_unique_id", documents.c.unique_id)

# -- traceability: append-only, read by the patient
access_log = Table(
    "access_log",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("id", String(36), primary_key=True),  # UUID
    Column("at", UTC, nullable=False),
    Column("actor_kind", String(24), nullable=False),
    Column("actor_id", String(ID_NAT), nullable=False),
    Column("actor_name", String(200), nullable=True),
    Column("profession", String(8), nullable=True),
    Column("structure_id", String(ID_NAT), nullable=True),
    Column("action", String(32), nullable=False),
    Column("mode", String(16), nullable=False),  # normal / bris_de_glace / centre_15
    Column("justification", Text, nullable=True),
    Column("document_id", String(64), nullable=True),
    Column("outcome", String(10), nullable=False),  # allowed / refused
    Column("reason", String(48), nullable=False),  # policies ReasonCode
    # How the professional's session was opened: "card" (CPS) or "e-cps" (Pro Santé
    # Connect); NULL before migration 0010 (card) and for the patient's own entries.
    Column("auth_means", String(8), nullable=True),
    # The hash chain (host/access_chain.py): position, previous entry's hash, own hash.
    Column("seq", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_access_log_at", access_log.c.ins, access_log.c.at)
# One entry per position: a second writer can never take the same seq (no fork).
Index("ix_access_log_seq", access_log.c.ins, access_log.c.seq, unique=True)

# The head of each patient's chain, advanced in the same transaction as each entry's insert.
access_chain = Table(
    "access_chain",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("created_at", UTC, nullable=False),
    Column("kind", String(32), nullable=False),  # emergency-access / new-document / ...
    Column("payload", JSON, nullable=False),
    Column("sent_at", UTC, nullable=True),
    # The sender's state (host/notify.py): pending -> sending (claimed with a token, committed
    # before the SMTP transaction) -> sent; skipped (channel none / no address), failed (gave
    # up or refused for good), uncertain (found "sending" at start-up: never sent again).
    Column("status", String(10), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTC, nullable=True),
    Column("claim_token", String(32), nullable=True),
    Column("claimed_at", UTC, nullable=True),
    Column("last_error", String(200), nullable=True),
)
Index("ix_notifications_pending", notifications.c.sent_at, notifications.c.created_at)
Index("ix_notifications_queue", notifications.c.status, notifications.c.created_at)

# The patient's contact and notification channel (given at creation, changed by the patient).
patient_contacts = Table(
    "patient_contacts",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("email", String(254), nullable=True),
    Column("channel", String(8), nullable=False),  # email / none
    Column("updated_at", UTC, nullable=False),
)

# Who has already accessed the dossier / deposited in it: the first time a professional
# does either is notified (role "access" / "author"). One row per (patient, role, person).
dossier_firsts = Table(
    "dossier_firsts",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("role", String(8), primary_key=True),
    Column("id_nat_ps", String(ID_NAT), primary_key=True),
    Column("at", UTC, nullable=False),
)

# The patient's portal account (host/portal): the password chosen at the first sign-in (made
# with the secrets sheet's code, which it then replaces) and the failed attempts' lockout.
portal_accounts = Table(
    "portal_accounts",
    metadata,
    Column("ins", String(INS), primary_key=True),
    Column("password_hash", String(200), nullable=True),  # scrypt$n$r$p$salt$hash
    Column("activated_at", UTC, nullable=True),
    Column("failures", Integer, nullable=False, default=0),  # consecutive wrong secrets
    Column("locked_until", UTC, nullable=True),
    Column("updated_at", UTC, nullable=False),
    ForeignKeyConstraint(["ins"], ["dossiers.ins"]),
)

# -- sessions: not patient data
challenges = Table(
    "challenges",
    metadata,
    Column("challenge", LargeBinary(32), primary_key=True),
    Column("workstation_sha256", String(64), nullable=False),
    Column("created_at", UTC, nullable=False),
    Column("expires_at", UTC, nullable=False),
    Column("used_at", UTC, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("cert_sha256", String(64), nullable=False, unique=True),
    Column("cert_serial", String(40), nullable=False),
    Column("id_nat_ps", String(ID_NAT), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("first_name", String(100), nullable=False),
    Column("profession", String(8), nullable=False),
    Column("specialty", String(16), nullable=True),
    Column("structure_id", String(ID_NAT), nullable=False),
    Column("card_serial", String(40), nullable=False),
    Column("workstation_sha256", String(64), nullable=False),
    # The workstation certificate's serial (hex), so a revoked workstation ends its sessions.
    Column("workstation_serial", String(40), nullable=True),
    Column("created_at", UTC, nullable=False),
    Column("not_after", UTC, nullable=False),
    Column("revoked_at", UTC, nullable=True),
    Column("revoked_reason", String(64), nullable=True),
    # "card" or "e-cps" (docs/psc.md); NULL: opened before migration 0010, with the card.
    Column("auth_means", String(8), nullable=True),
)

# The portal's browser sessions, found by the cookie (its SHA-256): a sign-in goes through
# stage "code" (the one-time code sent by email), "password" (first sign-in: choose one) and
# "active". Not dossier data: deleted when expired, and with the dossier at retention.
portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("ins", String(INS), nullable=False),
    Column("stage", String(10), nullable=False),  # code / password / active / ended
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTC, nullable=False),
    Column("last_seen_at", UTC, nullable=False),
    Column("expires_at", UTC, nullable=False),  # absolute end
    Column("otp_sha256", String(64), nullable=True),
    Column("otp_expires_at", UTC, nullable=True),
    Column("otp_attempts", Integer, nullable=False, default=0),
    Column("otp_sent", Integer, nullable=False, default=0),
)
Index("ix_portal_sessions_ins", portal_sessions.c.ins, portal_sessions.c.created_at)

# -- the registry of structures: what kind each one is (regulation centre, occupational
# health...), decided by the host's operator, never by what a client declares
structures = Table(
    "structures",
    metadata,
    Column("id", String(ID_NAT), primary_key=True),  # 3 + FINESS, 4 + SIREN, 5 + SIRET
    Column("name", String(200), nullable=False),
    Column("kind", String(24), nullable=False),  # policies.StructureKind
    Column("registered_at", UTC, nullable=False),
)

DOSSIER_TABLES = (
    dossiers, authorizations, medecins_traitants, submission_sets, documents, access_log,
    notifications, access_chain, patient_contacts, dossier_firsts, portal_accounts,
)
