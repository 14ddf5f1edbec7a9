"""The referrals page is the signed-in person's own: every member role may open it."""

from tests.role_matrix import Route

ROUTES = [
    Route("referrals", "member"),
    Route("referrals_payout", "member", methods=("POST",), data={"team": ""}),
]
