"""Security changes to a person's login (password, e-mail addresses, two-factor) happen inside
allauth's views; its signals are the only place to see them, so they are recorded here. These
events belong to the person, not a team (team=None): staff see them in the admin site."""

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals

from teams import audit


def _record(user, action: str, **details) -> None:
    audit.record(
        actor=user,
        team=None,
        action=action,
        resource_type="user",
        resource_id=user.email,
        details=details,
    )


def on_password_changed(sender, request, user, **kwargs) -> None:
    _record(user, "account.password_changed")


def on_password_reset(sender, request, user, **kwargs) -> None:
    _record(user, "account.password_reset")


def on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    _record(email_address.user, "account.email_confirmed", email=email_address.email)


def on_email_added(sender, request, user, email_address, **kwargs) -> None:
    _record(user, "account.email_added", email=email_address.email)


def on_email_removed(sender, request, user, email_address, **kwargs) -> None:
    _record(user, "account.email_removed", email=email_address.email)


def on_email_changed(sender, request, user, from_email_address, to_email_address, **kwargs):
    old = from_email_address.email if from_email_address else ""
    _record(user, "account.primary_email_changed", old=old, new=to_email_address.email)


def on_authenticator_added(sender, request, user, authenticator, **kwargs) -> None:
    _record(user, "account.2fa_added", type=authenticator.type)


def on_authenticator_removed(sender, request, user, authenticator, **kwargs) -> None:
    _record(user, "account.2fa_removed", type=authenticator.type)


def on_authenticator_reset(sender, request, user, authenticator, **kwargs) -> None:
    _record(user, "account.2fa_reset", type=authenticator.type)


def connect() -> None:
    receivers = [
        (account_signals.password_changed, on_password_changed),
        (account_signals.password_reset, on_password_reset),
        (account_signals.email_confirmed, on_email_confirmed),
        (account_signals.email_added, on_email_added),
        (account_signals.email_removed, on_email_removed),
        (account_signals.email_changed, on_email_changed),
        (mfa_signals.authenticator_added, on_authenticator_added),
        (mfa_signals.authenticator_removed, on_authenticator_removed),
        (mfa_signals.authenticator_reset, on_authenticator_reset),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, dispatch_uid=f"teams.account_audit.{receiver.__name__}")
