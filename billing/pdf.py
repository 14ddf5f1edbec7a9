"""Receipts and invoices as PDF (reportlab), with amounts formatted from Decimal."""

from io import BytesIO

from django.conf import settings
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from billing.models import Invoice, Payment
from billing.money import format_usd

LEFT = 20 * mm
RIGHT = A4[0] - 20 * mm


def _document(
    title: str,
    subtitle: str,
    rows: list[tuple[str, str]],
    total: tuple[str, str],
    footer: list[str],
) -> bytes:
    buffer = BytesIO()
    canvas = Canvas(buffer, pagesize=A4)
    canvas.setTitle(f"{title} {subtitle}")
    canvas.setAuthor(settings.SITE_NAME)
    y = A4[1] - 25 * mm
    canvas.setFont("Helvetica-Bold", 18)
    canvas.drawString(LEFT, y, settings.SITE_NAME)
    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawRightString(RIGHT, y, title)
    canvas.setFont("Helvetica", 10)
    canvas.drawRightString(RIGHT, y - 6 * mm, subtitle)
    y -= 22 * mm
    for label, value in rows:
        canvas.setFont("Helvetica-Bold", 10)
        canvas.drawString(LEFT, y, label)
        canvas.setFont("Helvetica", 10)
        for offset, line in enumerate(str(value).splitlines() or [""]):
            canvas.drawString(LEFT + 45 * mm, y - offset * 5 * mm, line)
        y -= max(1, len(str(value).splitlines())) * 5 * mm + 2 * mm
    y -= 4 * mm
    canvas.line(LEFT, y, RIGHT, y)
    y -= 8 * mm
    canvas.setFont("Helvetica-Bold", 12)
    canvas.drawString(LEFT, y, total[0])
    canvas.drawRightString(RIGHT, y, total[1])
    canvas.setFont("Helvetica", 9)
    y -= 16 * mm
    for line in footer:
        canvas.drawString(LEFT, y, line)
        y -= 5 * mm
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def receipt_pdf(payment: Payment) -> bytes:
    paid = payment.succeeded_at or payment.created_at
    rows = [
        ("Account", payment.team.name),
        ("Date paid", f"{paid:%Y-%m-%d %H:%M} UTC"),
        ("Payment", payment.get_kind_display()),
        ("Card", payment.card_label or "card"),
        ("Reference", payment.stripe_payment_intent_id or payment.public_id),
    ]
    return _document(
        "Receipt",
        payment.receipt_number,
        rows,
        ("Prepaid credit (USD)", format_usd(payment.amount)),
        ["Paid in full. Credit is prepaid and non-refundable.", settings.SITE_URL],
    )


def invoice_pdf(invoice: Invoice) -> bytes:
    rows = [
        ("Bill to", "\n".join(filter(None, [invoice.billing_name, invoice.billing_address]))),
        ("Tax ID", invoice.tax_id or "-"),
        ("Account", invoice.team.name),
        ("Issued", f"{invoice.issued_at:%Y-%m-%d}" if invoice.issued_at else "-"),
        ("Due", f"{invoice.due_date:%Y-%m-%d}" if invoice.due_date else "-"),
        ("Status", invoice.get_status_display()),
    ]
    footer = [
        "Pay by bank transfer (ACH/wire) or card; quote the invoice number as the reference.",
        "The amount is added to the account's prepaid credit when payment is received.",
    ]
    return _document(
        "Invoice",
        invoice.number or f"Request {invoice.public_id}",
        rows,
        ("Prepaid credit (USD)", format_usd(invoice.amount)),
        footer,
    )
