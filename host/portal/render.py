"""The portal's pages: Jinja2 templates (autoescaped) and the words a patient reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from policies import Policy, ReasonCode

from ..notify import PARIS, PROFESSIONS

ACTIONS = {
    "resolve_identity": "Recherche de votre identifiant (INS)",
    "test_existence": "Vérification de l'existence du DMP",
    "search": "Consultation de la liste des documents",
    "read": "Ouverture d'un document",
    "deposit": "Ajout d'un document",
    "replace": "Remplacement d'un document",
    "update_metadata": "Modification d'un document",
    "mask": "Masquage d'un document",
    "unmask": "Démasquage d'un document",
    "set_invisible": "Document rendu temporairement invisible pour vous",
    "set_visible": "Document rendu visible pour vous",
    "archive": "Archivage d'un document",
    "unarchive": "Désarchivage d'un document",
    "delete": "Suppression d'un document",
    "create": "Création du DMP",
    "close": "Fermeture du DMP",
    "close_at_patient_request": "Fermeture du DMP à votre demande",
    "reactivate": "Réactivation du DMP",
    "grant": "Enregistrement de votre autorisation d'accès",
    "revoke": "Retrait d'une autorisation",
    "block": "Blocage d'un professionnel",
    "unblock": "Déblocage d'un professionnel",
    "designate_medecin_traitant": "Déclaration d'un médecin traitant DMP",
    "end_medecin_traitant": "Fin d'un médecin traitant DMP",
    "list_authorizations": "Consultation des autorisations",
    "read_access_log": "Consultation de l'historique des accès",
    "verify_access_log": "Vérification de l'intégrité de l'historique",
    "read_notifications": "Consultation des notifications",
    "list_documents": "Consultation de la liste des documents",
    "list_professionals": "Consultation de la liste des professionnels",
    "set_consents": "Changement des oppositions aux accès d'urgence",
    "set_notifications": "Changement des notifications",
    "portal_sign_in": "Connexion au portail",
    "portal_code": "Saisie d'un code de connexion",
    "portal_set_password": "Choix d'un mot de passe",
    "portal_sign_out": "Déconnexion du portail",
    "portal_home": "Consultation des réglages",
}
MODES = {"normal": "", "bris_de_glace": "accès d'urgence (bris de glace)",
         "centre_15": "accès du centre de régulation (SAMU-centre 15)"}
PORTAL_REASONS = {
    "BAD_CREDENTIALS": "identifiant, code ou mot de passe incorrect",
    "BAD_CODE": "code de connexion incorrect",
    "ACCOUNT_LOCKED": "connexion bloquée après trop d'essais",
}
_POLICY = Policy()


def local_time(moment: dt.datetime | str | None, pattern: str = "%d/%m/%Y à %H h %M") -> str:
    """A moment as the patient reads it: French local time (Europe/Paris)."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(PARIS).strftime(pattern)


def profession(code: str | None) -> str:
    return PROFESSIONS.get(code or "", "professionnel de santé")


# How the professional proved who they were (host/actors.py CARD, ECPS).
AUTH_MEANS = {"card": "carte CPS", "e-cps": "e-CPS (Pro Santé Connect)"}


def auth_means(code: str | None) -> str:
    return AUTH_MEANS.get(code or "", code or "")


def action(code: str | None) -> str:
    return ACTIONS.get(code or "", code or "")


def mode(code: str | None) -> str:
    return MODES.get(code or "normal", code or "")


def reason(code: str | None) -> str:
    if code in PORTAL_REASONS:
        return PORTAL_REASONS[code]
    try:
        return ReasonCode[code or ""].fr
    except KeyError:
        return code or ""


def document_type(code: str | None) -> str:
    known = _POLICY.matrix.document_types.get(code or "")
    return known.label_fr if known is not None else f"document ({code})"


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("host.portal", "templates"),
                              autoescape=select_autoescape(default=True),
                              trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(when=local_time, profession=profession, action=action,
                               mode=mode, reason=reason, document_type=document_type,
                               auth_means=auth_means)
    return environment


ENVIRONMENT = _environment()


def page(name: str, **values: Any) -> str:
    return ENVIRONMENT.get_template(name).render(**values)
