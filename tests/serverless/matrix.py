"""Serverless pages for the role matrix (tests/test_role_matrix.py)."""

from serverless import services
from tests.role_matrix import Route
from tests.serverless.factories import an_endpoint


def endpoint(team) -> dict:
    return {"endpoint_id": an_endpoint(team).public_id}


def job(team) -> dict:
    made = an_endpoint(team)
    queued = services.submit_job(actor=None, endpoint=made, payload={"input": {"n": 1}})
    return {"endpoint_id": made.public_id, "job_id": queued.public_id}


ROUTES = [
    Route("endpoint_list", "use"),
    Route("endpoint_create", "deploy", ("GET", "POST")),
    Route("endpoint_detail", "use", make_kwargs=endpoint),
    Route("endpoint_edit", "deploy", ("GET", "POST"), make_kwargs=endpoint),
    Route("endpoint_delete", "deploy", ("POST",), make_kwargs=endpoint),
    Route("endpoint_test_job", "deploy", ("POST",), make_kwargs=endpoint, data={"input": "{}"}),
    Route("endpoint_job", "use", make_kwargs=job),
]
