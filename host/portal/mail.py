"""The one-time sign-in code, sent at once through the host's SMTP relay (not the queue of
host/notify.py: a code that arrives a minute late is no use)."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

from ..errors import HostError
from ..notify import Permanent, Retry, SmtpTarget, SmtpTransport, Uncertain
from ..settings import NotifySettings
from .accounts import CODE_LIFETIME, CodeToSend


def code_message(settings: NotifySettings, to_send: CodeToSend) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to_send.address
    message["Subject"] = f"Votre code de connexion à Mon DMP : {to_send.code}"
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Auto-Submitted"] = "auto-generated"
    hello = f"Bonjour {to_send.name},\n\n" if to_send.name else "Bonjour,\n\n"
    message.set_content(
        f"{hello}Voici votre code de connexion à votre DMP : {to_send.code}\n\n"
        f"Il est valable {CODE_LIFETIME.seconds // 60} minutes, une seule fois, dans le "
        "navigateur où vous l'avez demandé.\n\nSi vous n'avez pas demandé ce code, quelqu'un "
        "connaît votre identifiant et votre code ou mot de passe : changez votre mot de "
        "passe et consultez l'historique des accès de votre DMP.\n\n"
        "Ce message est automatique : n'y répondez pas.\n")
    return message


def send_code(settings: NotifySettings, to_send: CodeToSend) -> None:
    """Hand the code to the relay; HostError 503 when it cannot be sent now."""
    if not settings.smtp_url:
        raise HostError(503, "mail-unavailable", "L'envoi des codes n'est pas configuré sur "
                        "ce serveur : réessayez plus tard.", issue_type="transient")
    transport = SmtpTransport(SmtpTarget.parse(settings.smtp_url), settings.timeout)
    try:
        transport.send(settings.sender, to_send.address, code_message(settings, to_send))
    except (Retry, Uncertain):
        raise HostError(503, "mail-unavailable", "Le code n'a pas pu être envoyé : réessayez "
                        "dans un instant.", issue_type="transient") from None
    except Permanent:
        raise HostError(502, "mail-refused", "Le serveur de messagerie refuse l'adresse "
                        "enregistrée : un professionnel de santé peut la corriger.",
                        issue_type="transient") from None
    finally:
        transport.close()
