"""Billing pages. Each view: access check (team_view("billing")) -> form or service -> page."""

import csv

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing import invoices, payments, pdf, reports
from billing import stripe_gateway as gateway
from billing.burn import burn_rate
from billing.forms import (
    AutoRechargeForm,
    InvoiceRequestForm,
    LedgerFilterForm,
    LowBalanceAlertForm,
    TopUpForm,
    saved_cards,
)
from billing.models import Invoice, Payment, PaymentMethod
from billing.services import get_account
from teams.access import team_view


def _money_context(request: HttpRequest) -> dict:
    account = get_account(request.team)
    rate = burn_rate(request.team)
    lasts = reports.runway(account.balance, rate)
    return {
        "account": account,
        "burn_rate": rate,
        "runway": reports.format_duration(lasts) if lasts is not None else "",
        "stripe": gateway.config(),
    }


@team_view("billing")
def overview(request: HttpRequest) -> HttpResponse:
    team = request.team
    context = _money_context(request)
    account = context["account"]
    recent = reports.Statement(reports.ledger_entries(team), "day")
    opened = reports.open_sections(team, keeps=lambda line: True)
    context.update(
        chart_data=reports.chart_data(team),
        sections=opened + recent.sections(recent[:RECENT_LINES]),
        recent_payments=Payment.objects.for_team(team)[:5],
        invoices=Invoice.objects.for_team(team)[:10],
        cards=saved_cards(team),
        auto_recharge_form=AutoRechargeForm(
            team=team,
            initial={
                "enabled": account.auto_recharge_enabled,
                "threshold": account.auto_recharge_threshold,
                "amount": account.auto_recharge_amount,
                "card": account.auto_recharge_card,
            },
        ),
        max_failures=settings.AUTO_RECHARGE_MAX_FAILURES,
        alert_form=LowBalanceAlertForm(initial={"threshold": account.low_balance_alert_threshold}),
    )
    return render(request, "billing/overview.html", context)


RECENT_LINES = 10
LEDGER_PAGE_LINES = 50


def _statement(request: HttpRequest) -> tuple[LedgerFilterForm, reports.Statement]:
    form = LedgerFilterForm(request.GET or None)
    entries = form.filter(reports.ledger_entries(request.team))
    return form, reports.Statement(entries, form.grouping)


@team_view("billing")
def ledger(request: HttpRequest) -> HttpResponse:
    form, statement = _statement(request)
    page = statement.page(request.GET.get("page"), LEDGER_PAGE_LINES)
    query = request.GET.copy()
    query.pop("page", None)
    opened = reports.open_sections(request.team, form.keeps) if page.number == 1 else []
    context = {
        "form": form,
        "group": statement.group,
        "page": page,
        "sections": opened + statement.sections(page.object_list),
        "query": query.urlencode(),
        "total": statement.total(),
    }
    return render(request, "billing/ledger.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


@team_view("billing")
def ledger_csv(request: HttpRequest) -> StreamingHttpResponse:
    form, statement = _statement(request)
    opened = reports.open_sections(request.team, form.keeps)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in reports.statement_csv_rows(statement, opened)),
        content_type="text/csv",
    )
    filename = f"{request.team.slug}-ledger-by-{statement.group}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@team_view("billing")
def top_up(request: HttpRequest) -> HttpResponse:
    team = request.team
    form = TopUpForm(request.POST or None, team=team, initial={"amount": 100})
    if request.method == "POST":
        return _start_top_up(request, form)
    context = _money_context(request)
    context.update(form=form, cards=saved_cards(team), presets=[25, 50, 100, 250, 500])
    return render(request, "billing/top_up.html", context)


def _start_top_up(request: HttpRequest, form: TopUpForm) -> HttpResponse:
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            started = payments.start_top_up(
                team=request.team,
                actor=request.user,
                amount=data["amount"],
                card=data["card"],
                setup_intent_id=data["setup_intent"],
                save=data["save_card"],
            )
        except (payments.PaymentError, gateway.GatewayError) as exc:
            error = str(exc)
        else:
            return _top_up_started(request, started, wants_json)
    else:
        error = " ".join(m for errors in form.errors.values() for m in errors)
    if wants_json:
        return JsonResponse({"error": error}, status=400)
    messages.error(request, error)
    return redirect("billing_top_up", request.team.slug)


def _top_up_started(request, started: payments.TopUpStarted, wants_json: bool) -> HttpResponse:
    payment = started.payment
    url = reverse("billing_payment", args=[request.team.slug, payment.public_id])
    # A declined card is told once, by the payment page it lands on (failure-reason): no flash
    # message on top of it.
    if wants_json:
        return JsonResponse(
            {
                "payment": payment.public_id,
                "status": payment.status,
                "client_secret": started.client_secret if started.needs_authentication else "",
                "error": payment.failure_message,
                "redirect": url,
            }
        )
    return redirect(url)


@team_view("billing")
def payment_detail(request: HttpRequest, payment: str) -> HttpResponse:
    payment = get_object_or_404(Payment.objects.for_team(request.team), public_id=payment)
    payments.refresh_open_payment(payment)
    context = {"payment": payment, "account": get_account(request.team)}
    if request.htmx:
        return render(request, "billing/_payment_status.html", context)
    return render(request, "billing/payment.html", context)


@team_view("billing")
def receipt_pdf(request: HttpRequest, payment: str) -> HttpResponse:
    payment = get_object_or_404(
        Payment.objects.for_team(request.team), public_id=payment, status=Payment.Status.SUCCEEDED
    )
    response = HttpResponse(pdf.receipt_pdf(payment), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="receipt-{payment.receipt_number}.pdf"'
    return response


@team_view("billing")
def cards(request: HttpRequest) -> HttpResponse:
    context = _money_context(request)
    context["cards"] = saved_cards(request.team)
    return render(request, "billing/cards.html", context)


@team_view("billing")
@require_POST
def card_setup(request: HttpRequest) -> JsonResponse:
    """A SetupIntent client secret for Stripe.js to confirm a new card against."""
    try:
        intent = payments.start_card_setup(team=request.team, actor=request.user)
    except gateway.GatewayError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"client_secret": intent.client_secret})


@team_view("billing")
@require_POST
def card_add(request: HttpRequest) -> HttpResponse:
    setup_intent = request.POST.get("setup_intent", "")
    if not setup_intent:
        messages.error(request, "Enter the card details first.")
        return redirect("billing_cards", request.team.slug)
    try:
        card = payments.save_card(
            team=request.team, actor=request.user, setup_intent_id=setup_intent
        )
    except (payments.PaymentError, gateway.GatewayError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{card} was saved.")
    return redirect("billing_cards", request.team.slug)


def _card(request: HttpRequest, card: str) -> PaymentMethod:
    return get_object_or_404(saved_cards(request.team), public_id=card)


@team_view("billing")
@require_POST
def card_default(request: HttpRequest, card: str) -> HttpResponse:
    card = _card(request, card)
    payments.set_default_card(card=card, actor=request.user)
    messages.success(request, f"{card} is now your default card.")
    return redirect("billing_cards", request.team.slug)


@team_view("billing")
@require_POST
def card_remove(request: HttpRequest, card: str) -> HttpResponse:
    card = _card(request, card)
    payments.remove_card(card=card, actor=request.user)
    messages.success(request, f"{card} was removed.")
    return redirect("billing_cards", request.team.slug)


@team_view("billing")
@require_POST
def auto_recharge(request: HttpRequest) -> HttpResponse:
    form = AutoRechargeForm(request.POST, team=request.team)
    if form.is_valid():
        data = form.cleaned_data
        try:
            payments.configure_auto_recharge(
                team=request.team,
                actor=request.user,
                new=payments.AutoRechargeSettings(
                    enabled=data["enabled"],
                    threshold=data["threshold"],
                    amount=data["amount"],
                    card=data["card"],
                ),
            )
        except payments.PaymentError as exc:
            messages.error(request, str(exc))
        else:
            state = "on" if data["enabled"] else "off"
            messages.success(request, f"Auto-recharge is {state}.")
    else:
        messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
    return redirect("billing", request.team.slug)


@team_view("billing")
@require_POST
def low_balance_alert(request: HttpRequest) -> HttpResponse:
    form = LowBalanceAlertForm(request.POST)
    if form.is_valid():
        threshold = form.cleaned_data["threshold"]
        payments.set_low_balance_alert(team=request.team, actor=request.user, threshold=threshold)
        if threshold:
            messages.success(request, "We will e-mail billing members when the balance runs low.")
        else:
            messages.success(request, "The low-balance e-mail is off.")
    else:
        messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
    return redirect("billing", request.team.slug)


@team_view("billing")
def invoice_request(request: HttpRequest) -> HttpResponse:
    form = InvoiceRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invoice = invoices.request_invoice(
                team=request.team, actor=request.user, **form.cleaned_data
            )
        except invoices.InvoiceError as exc:
            form.add_error("amount", str(exc))
        else:
            messages.success(request, "Invoice requested. Our staff will issue it shortly.")
            return redirect("billing_invoice", request.team.slug, invoice.public_id)
    return render(request, "billing/invoice_request.html", {"form": form})


@team_view("billing")
def invoice_detail(request: HttpRequest, invoice: str) -> HttpResponse:
    invoice = get_object_or_404(Invoice.objects.for_team(request.team), public_id=invoice)
    return render(request, "billing/invoice.html", {"invoice": invoice})


@team_view("billing")
def invoice_pdf(request: HttpRequest, invoice: str) -> HttpResponse:
    invoice = get_object_or_404(
        Invoice.objects.for_team(request.team).exclude(status=Invoice.Status.REQUESTED),
        public_id=invoice,
    )
    response = HttpResponse(pdf.invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response
