"""The one-off emails of self-service: "confirm your subscription" and "you already get this"."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

import jinja2

from ..models import utc_now
from ..render.digest import make_environment, template_dirs
from ..settings import Settings
from ..text import one_line
from .compose import ComposedMessage, checked_address
from .dkim import DkimSigner

TEXT_TEMPLATE = "web/confirm_mail.txt"
HTML_TEMPLATE = "web/confirm_mail.html"


@dataclass(frozen=True)
class Notice:
    """What the mail says: a confirm link for a new reader, a manage link for one already in."""

    email: str
    confirm_url: str = ""
    manage_url: str = ""

    @property
    def already(self) -> bool:
        return not self.confirm_url


class NoticeComposer:
    """Builds notice messages with the digest's sender, look and DKIM key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env: jinja2.Environment = make_environment(template_dirs(settings))
        self.signer = DkimSigner.from_settings(settings.dkim, settings.config_dir)
        self.sender = checked_address(settings.sender.address)

    def subject(self, notice: Notice) -> str:
        title = one_line(self.settings.title)
        return f"{title}: you are subscribed" if notice.already else f"Confirm your {title} subscription"

    def compose(self, notice: Notice) -> ComposedMessage:
        """A multipart/alternative message (text, then HTML) ready for SMTP DATA."""
        recipient = checked_address(notice.email)
        sender = self.settings.sender
        context = {
            "email": recipient,
            "already": notice.already,
            "confirm_url": notice.confirm_url,
            "manage_url": notice.manage_url,
            "site_title": self.settings.title,
            "sender_name": sender.name,
            "sender_address": sender.address,
            "postal_address": sender.postal_address,
            "subject": self.subject(notice),
        }
        message = EmailMessage(policy=SMTP)
        message["From"] = f"{one_line(sender.name)} <{self.sender}>" if sender.name else self.sender
        message["To"] = recipient
        message["Subject"] = self.subject(notice)
        message["Date"] = format_datetime(utc_now())
        mid = make_msgid(idstring=secrets.token_hex(4), domain=self.sender.rsplit("@", 1)[1])
        message["Message-ID"] = mid
        # An answer to something the reader did (RFC 3834): vacation responders stay quiet.
        message["Auto-Submitted"] = "auto-replied"
        if sender.reply_to:
            message["Reply-To"] = sender.reply_to
        message.set_content(self.env.get_template(TEXT_TEMPLATE).render(context), cte="quoted-printable")
        message.add_alternative(
            self.env.get_template(HTML_TEMPLATE).render(context), subtype="html", cte="quoted-printable"
        )
        data = message.as_bytes()
        if self.signer is not None:
            data = self.signer.sign(data)
        return ComposedMessage.of(mid, recipient, data)
