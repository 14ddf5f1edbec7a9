"""The Stripe webhook endpoint: verify, record, apply. Anything unverifiable is a 400; when
Stripe's API cannot be asked about the event's object it is a 503, so Stripe delivers again."""

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import payments
from billing import stripe_gateway as gateway

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = gateway.verify_webhook(request.body, request.headers.get("Stripe-Signature", ""))
    except gateway.InvalidWebhook as exc:
        log.warning("rejected Stripe webhook: %s", exc)
        return HttpResponseBadRequest("invalid webhook")
    try:
        payments.handle_webhook_event(event)
    except gateway.GatewayError as exc:
        log.warning("could not settle Stripe event %s yet: %s", event.get("id"), exc)
        return HttpResponse("try again later", status=503)
    return HttpResponse("ok")
