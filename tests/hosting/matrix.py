"""Hosting pages: machines and reliability for every member who may use the account, the
changes (registration, agent tokens, maintenance) for admins."""

from tests.role_matrix import Route


def machine(team) -> dict:
    from hosting import services
    from hosting.models import HostedMachine
    from tests.hosting.conftest import register
    from tests.pods.factories import catalogue

    services.set_host(actor=None, team=team, is_host=True)
    services.set_kyc(actor=None, team=team, status="verified")
    hosted: HostedMachine = register(team, catalogue())
    return {"machine_id": hosted.public_id}


ROUTES = [
    Route("hosting", "use"),
    Route("hosting_earnings", "billing"),
    Route("hosting_machine_new", "admin", methods=("GET", "POST")),
    Route("hosting_machine", "use", make_kwargs=machine),
    Route("hosting_machine_token", "admin", methods=("POST",), make_kwargs=machine),
    Route("hosting_maintenance", "admin", methods=("POST",), make_kwargs=machine),
]
