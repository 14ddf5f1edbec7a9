"""Team-scoped billing pages, mounted under /t/<team>/billing/."""

from django.urls import path

from billing import views

urlpatterns = [
    path("", views.overview, name="billing"),
    path("ledger/", views.ledger, name="billing_ledger"),
    path("ledger.csv", views.ledger_csv, name="billing_ledger_csv"),
    path("top-up/", views.top_up, name="billing_top_up"),
    path("payments/<str:payment>/", views.payment_detail, name="billing_payment"),
    path("payments/<str:payment>/receipt.pdf", views.receipt_pdf, name="billing_receipt_pdf"),
    path("cards/", views.cards, name="billing_cards"),
    path("cards/setup/", views.card_setup, name="billing_card_setup"),
    path("cards/add/", views.card_add, name="billing_card_add"),
    path("cards/<str:card>/default/", views.card_default, name="billing_card_default"),
    path("cards/<str:card>/remove/", views.card_remove, name="billing_card_remove"),
    path("auto-recharge/", views.auto_recharge, name="billing_auto_recharge"),
    path("alerts/", views.low_balance_alert, name="billing_alerts"),
    path("invoices/request/", views.invoice_request, name="billing_invoice_request"),
    path("invoices/<str:invoice>/", views.invoice_detail, name="billing_invoice"),
    path("invoices/<str:invoice>/invoice.pdf", views.invoice_pdf, name="billing_invoice_pdf"),
]
