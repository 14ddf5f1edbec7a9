"""billing URLs outside any team (webhooks, public links), mounted at /billing/."""

from django.urls import path

from billing import webhooks

urlpatterns = [
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
]
