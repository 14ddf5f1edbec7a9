"""Serverless pages for the role matrix (tests/test_role_matrix.py)."""

from serverless import services
from serverless.models import Job
from tests.role_matrix import Route
from tests.serverless.factories import an_endpoint


def endpoint(team) -> dict:
    return {"endpoint_id": an_endpoint(team).public_id}


def job(team) -> dict:
    made = an_endpoint(team)
    # A row, not submit_job: submitting needs funds, which the matrix's team has none of.
    queued = Job.objects.create(endpoint=made, input={"n": 1}, execution_timeout=600)
    return {"endpoint_id": made.public_id, "job_id": queued.public_id}


def worker(team) -> dict:
    made = an_endpoint(team)
    registered, _ = services.register_worker(actor=None, endpoint=made)
    return {"endpoint_id": made.public_id, "worker_id": registered.public_id}


ROUTES = [
    Route("endpoint_list", "use"),
    Route("endpoint_create", "deploy", ("GET", "POST")),
    Route("endpoint_detail", "use", make_kwargs=endpoint),
    Route("endpoint_edit", "deploy", ("GET", "POST"), make_kwargs=endpoint),
    Route("endpoint_delete", "deploy", ("POST",), make_kwargs=endpoint),
    Route("endpoint_test_job", "deploy", ("POST",), make_kwargs=endpoint, data={"input": "{}"}),
    Route("endpoint_job", "use", make_kwargs=job),
    Route("endpoint_worker_logs", "use", make_kwargs=worker),
]
