"""The host's refusals in the agent's words, one language at a time (docs/i18n.md).

The host answers every refusal with an OperationOutcome: a stable code (system
``urn:dmp:host:error``) and a sentence written "français / English" for any client. The wire
is the host's contract with foreign clients too, so it stays as it is; the agent words each
refusal from its code, through its catalogue, in the user's language.

Three kinds of wording:

- `REFUSALS`: a code a professional meets in daily work (no DMP, access refused, the
  patient's opposition, the session, the identity, the deposit's signature): its own sentence.
- `FAMILIES`: codes whose host sentence names the element at fault (a document's metadata,
  its CDA content, a malformed request): one sentence for the family, with the host's detail
  in the user's language (`{detail}`).
- Any other code (a newer host): the host's sentence, its part in the user's language when
  it has the "français / English" shape, else as it is.

`tests/unit/test_host_refusals.py` collects the codes the host can emit from its source and
fails when one has no wording here.
"""

from __future__ import annotations

from agent.i18n import N_, _, current_language

__all__ = ["FAMILIES", "REFUSALS", "host_text", "refusal_text", "worded_codes"]

# Each code a professional may meet, by subject; the English id, its French in messages.po.
REFUSALS: dict[str, str] = {
    # The dossier and the access rules (policies.reasons.ReasonCode, refusals).
    "blocked": N_("The patient has blocked you from their DMP."),
    "excluded-practice": N_("The law forbids DMP access in this practice context "
                            "(occupational health, insurer, mutual)."),
    "regulation-centre-only": N_("The centre 15 mode is reserved to structures registered as "
                                 "regulation centres."),
    "mode-not-for-actor": N_("This access mode is not open to this kind of user."),
    "justification-required": N_("Break-the-glass needs a justification."),
    "break-the-glass-opted-out": N_("The patient opted out of break-the-glass access."),
    "centre-15-opted-out": N_("The patient opted out of access by the emergency regulation "
                              "centre."),
    "action-not-in-emergency-mode": N_("This action is not available in an emergency access "
                                       "mode."),
    "dossier-absent": N_("This patient has no DMP."),
    "dossier-closed": N_("The DMP is closed."),
    "dossier-exists": N_("The DMP already exists."),
    "dossier-not-closed": N_("The DMP is not closed."),
    "no-authorisation": N_("The patient has not authorised you to consult their DMP."),
    "authorisation-expired": N_("Your authorisation on this DMP has expired."),
    "unknown-profession": N_("Profession unknown to the access matrix."),
    "profession-may-not-read": N_("Your profession may not read this document type."),
    "profession-may-not-write": N_("Your profession may not deposit this document type."),
    "unknown-document-type": N_("Unknown document type."),
    "class-type-mismatch": N_("The document's class does not match its type."),
    "patient-class-reserved": N_("Only the patient deposits documents of this class."),
    "patient-class-only": N_("The patient deposits only documents of the patient-documents "
                             "class."),
    "author-mismatch": N_("The document's declared author is not the user."),
    "only-author": N_("Only the document's author may do this."),
    "masked": N_("This document is masked from health professionals."),
    "invisible-to-patient": N_("This document is not yet visible to the patient."),
    "invisible-to-legal-representatives": N_("This document is not visible to legal "
                                             "representatives."),
    "masked-and-invisible": N_("A document may not be both masked and invisible to the "
                               "patient."),
    "document-deleted": N_("This document was deleted."),
    "not-in-default-search": N_("Replaced or archived document: not shown in default "
                                "searches."),
    "document-state": N_("The document's state does not allow this action."),
    "document-required": N_("This action concerns a document, and none was given."),
    "patient-only": N_("Only the patient or their legal representative may do this."),
    "professional-only": N_("Only a health professional may do this."),
    "consent-required": N_("The patient's consent is required."),
    "medecin-traitant-unknown": N_("This professional is not the patient's DMP attending "
                                   "doctor."),
    "not-blocked": N_("This professional is not blocked."),
    "authorization-unknown": N_("No authorisation to revoke for this professional."),
    "not-a-doctor": N_("Only a doctor can be the DMP attending doctor."),
    "not-a-known-doctor": N_("This doctor never accessed this DMP: ask them to open it "
                             "first."),
    # The session: the card, the e-CPS, the workstation (host/session_crypto.py,
    # host/psc_token.py, host/actors.py).
    "card-cert-malformed": N_("The card certificate cannot be read or lacks holder data."),
    "card-cert-untrusted": N_("The card certificate was not issued by the trusted health "
                              "authority."),
    "card-cert-not-yet-valid": N_("The card certificate is not valid yet."),
    "card-cert-expired": N_("The card certificate has expired: the card must be renewed."),
    "crl-unavailable": N_("The health authority's revocation list is missing, invalid or out "
                          "of date."),
    "card-cert-revoked": N_("The card certificate has been revoked (card lost, stolen or "
                            "replaced)."),
    "card-cert-unfit": N_("This card certificate is not meant for authentication."),
    "test-card-refused": N_("Test card refused: this is a production host."),
    "real-card-refused": N_("Real card refused: this is a test host."),
    "identity-mismatch": N_("The session request does not name the card holder."),
    "session-key-mismatch": N_("The session key presented is not the one the card signed."),
    "workstation-mismatch": N_("The session request was signed for another workstation."),
    "clock-skew": N_("The workstation clock is too far from the host's."),
    "structure-not-on-card": N_("The structure requested is not one of this card's practice "
                                "situations."),
    "challenge-unknown": N_("The session challenge is unknown, expired or already used."),
    "psc-token-malformed": N_("The Pro Santé Connect token cannot be read."),
    "psc-alg-refused": N_("The Pro Santé Connect token uses a refused signature algorithm."),
    "psc-unknown-key": N_("The Pro Santé Connect token is signed with a key the provider does "
                          "not publish."),
    "psc-bad-signature": N_("The Pro Santé Connect token's signature is invalid."),
    "psc-wrong-issuer": N_("The token was not issued by the trusted Pro Santé Connect "
                           "provider."),
    "psc-wrong-audience": N_("The Pro Santé Connect token was issued for another service."),
    "psc-token-expired": N_("The Pro Santé Connect token has expired: log in with the e-CPS "
                            "again."),
    "psc-acr-insufficient": N_("The Pro Santé Connect token does not come from a strong "
                               "authentication (eidas1)."),
    "psc-nonce-mismatch": N_("The Pro Santé Connect token was not requested for this "
                             "challenge and session key."),
    "psc-nonce-replayed": N_("This Pro Santé Connect token already opened a session: it is "
                             "good for one only."),
    "psc-claims-missing": N_("The Pro Santé Connect token does not say who the professional "
                             "is."),
    "psc-unavailable": N_("The Pro Santé Connect provider does not answer: retry or use the "
                          "CPS card."),
    "psc-not-configured": N_("This host does not accept e-CPS logins."),
    "structure-not-in-psc": N_("The structure requested is not one of the professional's "
                               "practice situations."),
    "no-session": N_("No session is open with the host: open the session again."),
    "session-expired": N_("The session with the host has expired: open it again."),
    "session-revoked": N_("The session with the host was closed (card removed or logout): "
                          "open it again."),
    "card-revoked": N_("The session ended: the card has been revoked."),
    "workstation-revoked": N_("This workstation's certificate has been revoked: ask your "
                              "administrator for a new one."),
    "not-a-workstation": N_("This is not a workstation certificate: open the session with the "
                            "establishment certificate."),
    # The patient's identity (INS).
    "identity-unknown": N_("The identity service does not know this patient: read the Vitale "
                           "card again, or check the traits."),
    "identity-ambiguous": N_("Several identities match these traits: check the card and add "
                             "the insured's NIR or the birth place."),
    "too-many-identities": N_("Too many identities match: add traits (birth place, all the "
                              "first names)."),
    "identity-not-qualified": N_("The patient's identity is not qualified: no document can be "
                                 "deposited under this INS before an identity document of high "
                                 "trust level has been checked."),
    "test-identity-refused": N_("Test identity refused by a production host."),
    # Documents: finding, changing, depositing.
    "document-not-found": N_("No such document in this DMP."),
    "replaced-document-not-found": N_("The document to replace is not in this DMP."),
    "document-too-large": N_("The document is too large for the host."),
    "concurrent-change": N_("The document changed meanwhile: retry."),
    "concurrent-deposit": N_("The same document was being deposited at the same time: retry "
                             "to get the host's answer."),
    "version-mismatch": N_("The document was changed meanwhile: refresh it and retry."),
    "duplicate-unique-id": N_("This document was already deposited in another submission "
                              "set."),
    "submission-set-conflict": N_("This submission set was already deposited with other "
                                  "documents."),
    "unknown-binary": N_("The uploaded content is unknown or expired: send the document "
                         "again."),
    "identifier-not-selective": N_("More than one patient holds a document with this "
                                   "identifier: name the patient."),
    "invalid-status-change": N_("Only the deletion of a document may change its status."),
    "invalid-title": N_("The document's title holds a control character, which is not "
                        "allowed."),
    "invalid-characters": N_("A text of the document's metadata holds a control character, "
                             "which is not allowed."),
    "not-modifiable": N_("Only the status, the confidentiality and the archiving of a "
                         "document may change."),
    # The deposit's signature (host/documents/signing.py, wire/dsg.py).
    "signature-missing": N_("The deposit has no signature document: it must be signed."),
    "bad-signature": N_("The signature does not verify: what was signed is not what was "
                        "sent."),
    "signature-wrong-signer": N_("The deposit is signed by another card than the "
                                 "session's."),
    "signature-manifest-mismatch": N_("The signature covers other documents, other content "
                                      "or another patient than this deposit."),
    "signature-cert-unfit": N_("This certificate is not for signing: sign with the CPS "
                               "card's signature key."),
    "signature-establishment-card-session": N_("An establishment signature is accepted on an "
                                               "e-CPS session only: sign with the card."),
    "signature-establishment-other-workstation": N_("The deposit is signed by another "
                                                    "workstation's certificate than the "
                                                    "session's."),
    "signature-too-large": N_("The signature document is too large."),
    "signature-dtd": N_("The signature document holds a DTD or entities, which are "
                        "refused."),
    "signature-malformed": N_("The signature document cannot be read."),
    "health-ca-unavailable": N_("The host cannot check signatures now (its health authority "
                                "is not configured): tell the host's administrator."),
    "cisis-data-missing": N_("The host cannot check CDA documents now (its CI-SIS files are "
                             "missing): tell the host's administrator."),
    # The host itself.
    "internal-error": N_("The DMP host failed (internal error): retry later."),
}

# The document's metadata or content against the rules: the host names what is wrong.
_DOCUMENT = N_("The host refused the document: {detail}")
# A request the agent built that the host could not read (a bug, or an agent and a host of
# different versions): the code helps the support.
_REQUEST = N_("The host refused the request as malformed ({code}): {detail}")
# What the professional typed (a reason, a justification, the patient's traits).
_INPUT = N_("The host refused what was typed: {detail}")

FAMILIES: dict[str, frozenset[str]] = {
    _DOCUMENT: frozenset({
        "unknown-type", "unknown-class", "unknown-format", "format-mime-mismatch",
        "unknown-confidentiality", "unknown-facility-type", "unknown-practice-setting",
        "hash-mismatch", "size-mismatch", "missing-field", "invalid-content", "invalid-hash",
        "invalid-size", "invalid-author", "invalid-unique-id", "unknown-patient",
        "patient-mismatch", "invalid-ins", "invalid-ins-oid", "invalid-replacement",
        "missing-content", "content-type-mismatch", "invalid-language", "invalid-mime-type",
        "cda-author-id", "cda-author-profession",
        "cda-author-structure", "cda-body-encoding", "cda-body-too-large", "cda-check-failed",
        "cda-confidentiality", "cda-format-mismatch", "cda-header-invalid", "cda-invalid-time",
        "cda-no-author", "cda-no-body", "cda-no-id", "cda-no-ins", "cda-no-patient",
        "cda-no-time", "cda-no-type", "cda-not-clinical-document", "cda-not-level-1",
        "cda-patient-mismatch", "cda-replacement-parent", "cda-replacement-set-id",
        "cda-replacement-undeclared", "cda-replacement-version", "cda-schematron",
        "cda-type-mismatch", "cda-unique-id-mismatch",
        "cda-unknown-media-type", "cda-unknown-volet", "cda-xsd", "xml-dtd", "xml-encoding",
        "xml-entity-expansion", "xml-external-dtd", "xml-external-entity", "xml-malformed",
        "xml-not-bytes", "xml-too-large",
    }),
    _INPUT: frozenset({
        "bad-justification", "justification-too-long", "reason-required", "reason-too-long",
        "bad-reason", "bad-trait", "missing-trait", "bad-ins", "bad-id-nat-ps", "bad-structure",
        "bad-expiry", "bad-access-mode", "control-characters", "bad-consents",
    }),
    _REQUEST: frozenset({
        "bad-request", "bad-json", "too-deep", "not-json", "not-a-bundle", "bundle-type",
        "too-many-items", "too-many", "resource-too-large", "invalid-structure",
        "invalid-field", "invalid-date", "invalid-code", "invalid-resource",
        "unsupported-resource", "unsupported-contained", "unsupported-folder",
        "unsupported-relation", "unknown-modifier-extension", "invalid-request",
        "invalid-full-url", "duplicate-full-url", "unresolved-reference",
        "submission-set-count", "invalid-submission-set", "no-document", "duplicate-content",
        "binary-unreferenced", "invalid-base64", "invalid-status", "invalid-patch",
        "patch-failed", "entry-failed", "invalid-binary-id", "invalid-identifier",
        "identifier-required",
        "invalid-search", "unknown-search-parameter", "unsupported-modifier",
        "patient-required", "status-required", "unsupported-media-type", "invalid-statement",
        "bad-limit", "bad-cursor", "bad-outcome", "bad-channel", "bad-contact", "no-address",
        "no-change",
    }),
}
_FAMILY_OF = {code: wording for wording, codes in FAMILIES.items() for code in codes}


def worded_codes() -> frozenset[str]:
    """Every host code the agent has its own words for."""
    return frozenset(REFUSALS) | frozenset(_FAMILY_OF)


def host_text(text: str, language: str | None = None) -> str:
    """The host's (or the wire's, e.g. a `wire.cda.CdaError`'s) sentence in ``language``
    (default: the agent's): the part before or after
    the one " / " of its "français / English" shape; the sentence as it is when it has not
    exactly that shape (an English-only detail, a slash inside a part)."""
    language = language or current_language()
    parts = text.split(" / ")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        return text.strip()
    french, english = (part.strip() for part in parts)
    if language == "fr":
        return french
    return english[:1].upper() + english[1:]


def refusal_text(code: str, text: str) -> str:
    """The refusal ``code`` (the host's sentence: ``text``) in the agent's words."""
    wording = REFUSALS.get(code)
    if wording is not None:
        return _(wording)
    family = _FAMILY_OF.get(code)
    if family is not None:
        return _(family).format(code=code, detail=host_text(text))
    return host_text(text)
