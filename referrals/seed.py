"""The three programs of SPEC.md, created once (staff edit them in the admin afterwards).

The guide's programs end on 2024-12-31; ours start on the day they are seeded and stay open
until staff set an end date."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from referrals.models import Program, ProgramKind
from referrals.services import save_program

PROGRAMS = [
    (ProgramKind.PODS, "Pod referral program", Decimal("0.03")),
    (ProgramKind.SERVERLESS, "Serverless referral program", Decimal("0.05")),
    (ProgramKind.TEMPLATES, "Template program", Decimal("0.01")),
]


def run(stdout) -> None:
    today = timezone.now().date()
    for kind, name, rate in PROGRAMS:
        if Program.objects.filter(kind=kind).exists():
            continue
        program = Program(
            kind=kind, name=name, rate=rate, starts_on=today, min_template_runtime=timedelta(days=1)
        )
        save_program(program=program, actor=None)
        stdout.write(f"Referral program: {program}")
