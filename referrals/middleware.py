"""Remember a referral link's code: `?ref=<code>` on any page sets a cookie for
REFERRAL_COOKIE_DAYS (30) days, which signup reads (referrals.services).

First touch wins: a visitor who already carries a valid code keeps it when they open someone
else's link, so whoever brought them first is credited. Only codes of active users are stored.
Signed-in people are existing accounts, which never count: they get no cookie, and a leftover
one is dropped once they are signed in (e.g. right after signing up).
"""

from django.conf import settings

from referrals.services import referrer_for_code


class ReferralCookieMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        name, code = settings.REFERRAL_COOKIE_NAME, request.GET.get("ref")
        if not code and name not in request.COOKIES:
            return response
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if name in request.COOKIES:
                response.delete_cookie(name)
            return response
        if code and not self._has_valid_code(request) and referrer_for_code(code):
            response.set_cookie(
                name,
                code,
                max_age=settings.REFERRAL_COOKIE_DAYS * 24 * 3600,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response

    @staticmethod
    def _has_valid_code(request) -> bool:
        current = request.COOKIES.get(settings.REFERRAL_COOKIE_NAME)
        return bool(current) and referrer_for_code(current) is not None
