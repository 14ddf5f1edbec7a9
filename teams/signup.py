"""What happens after someone signs up, for apps above teams.

Teams creates the personal account; higher apps (referrals) register a hook from their
AppConfig.ready() instead of teams importing them:

    from teams.signup import register_after_signup
    register_after_signup(referrals.services.attribute_signup_from_request)

A hook is called as hook(request=..., user=..., team=...) once the user and their personal
account exist. A failing hook is logged and never undoes or blocks the signup.
"""

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

AfterSignupHook = Callable[..., None]
AFTER_SIGNUP_HOOKS: list[AfterSignupHook] = []


def register_after_signup(hook: AfterSignupHook) -> None:
    if hook not in AFTER_SIGNUP_HOOKS:
        AFTER_SIGNUP_HOOKS.append(hook)


def run_after_signup(*, request, user, team) -> None:
    for hook in AFTER_SIGNUP_HOOKS:
        try:
            hook(request=request, user=user, team=team)
        except Exception:
            log.exception("after-signup hook %r failed for user %s", hook, user.pk)
