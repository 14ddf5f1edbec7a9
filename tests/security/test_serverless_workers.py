"""A serverless worker runs the customer's code: everything it sends is attacker input. It
may only report on jobs handed to it, with its own secret, on its own endpoint."""

import json

import pytest
from django.test import Client

from serverless import services
from serverless.models import Job
from serverless.views import error_parts
from teams.services import create_api_key
from tests.conftest import login
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


def post(url: str, body, secret: str):
    return Client().post(url, json.dumps(body), content_type=FORM, HTTP_AUTHORIZATION=secret)


@pytest.fixture
def setting(team, charlie):
    """Acme's endpoint with a running job on its worker; charlie's endpoint and worker."""
    mine = an_endpoint(team)
    worker, secret = a_worker(mine)
    job = services.submit_job(actor=None, endpoint=mine, payload={"input": {"secret": "acme"}})
    services.claim_jobs(worker=worker, count=1)
    theirs = an_endpoint(charlie.memberships.get().team)
    other_worker, other_secret = a_worker(theirs)
    return mine, worker, secret, job, theirs, other_worker, other_secret


def test_a_wrong_secret_is_a_401_and_changes_nothing(setting):
    mine, worker, secret, job, *_ = setting
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    for wrong in ("", "rpw_guess", secret + "x", f"Bearer {secret}x", "rpa_notakey"):
        assert post(url, {"output": "forged"}, wrong).status_code == 401
    job.refresh_from_db()
    assert job.status == "IN_PROGRESS"


def test_another_endpoints_worker_cannot_report_on_my_job(setting):
    mine, worker, secret, job, theirs, other_worker, other_secret = setting
    forged = [
        f"/v2/{mine.public_id}/job-done/{other_worker.public_id}/{job.public_id}",
        f"/v2/{theirs.public_id}/job-done/{other_worker.public_id}/{job.public_id}",
        f"/v2/{theirs.public_id}/job-stream/{other_worker.public_id}/{job.public_id}",
    ]
    answers = [post(url, {"output": "forged"}, other_secret) for url in forged]
    assert [a.status_code for a in answers] == [401, 200, 200]
    assert answers[1].json() == answers[2].json() == {"accepted": False}
    job.refresh_from_db()
    assert (job.status, job.output, job.chunks.count()) == ("IN_PROGRESS", None, 0)


def test_a_worker_cannot_finish_a_job_of_another_worker_of_the_same_endpoint(setting):
    mine, worker, secret, job, *_ = setting
    sibling, sibling_secret = a_worker(mine)
    url = f"/v2/{mine.public_id}/job-done/{sibling.public_id}/{job.public_id}"
    assert post(url, {"output": "stolen"}, sibling_secret).json() == {"accepted": False}
    job.refresh_from_db()
    assert job.status == "IN_PROGRESS"


def test_an_api_key_of_the_team_is_not_a_worker_secret(setting, team, alice):
    mine, worker, _, job, *_ = setting
    _, key = create_api_key(team=team, actor=alice, name="k", permission="read_write")
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    assert post(url, {"output": "x"}, key).status_code == 401


def test_a_stopped_workers_secret_is_refused(setting):
    mine, worker, secret, job, *_ = setting
    worker.state = "stopped"
    worker.save()
    url = f"/v2/{mine.public_id}/ping/{worker.public_id}"
    assert Client().get(url, HTTP_AUTHORIZATION=secret).status_code == 401


def test_the_secret_is_stored_hashed(setting):
    _, worker, secret, *_ = setting
    worker.refresh_from_db()
    assert (
        secret.startswith("rpw_")
        and secret not in worker.secret_hash
        and len(worker.secret_hash) == 64
    )


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        "null",
        '"text"',
        '{"output": ' * 50 + "1" + "}" * 50,
        '{"output": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
)
def test_hostile_bodies_are_refused_or_ignored_never_a_500(setting, body):
    mine, worker, secret, job, *_ = setting
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    response = Client().post(url, body, content_type=FORM, HTTP_AUTHORIZATION=secret)
    assert response.status_code in (200, 400)


def test_a_result_over_20_mb_is_a_413(setting):
    mine, worker, secret, job, *_ = setting
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    response = post(url, {"output": "x" * (20 * 1024 * 1024)}, secret)
    assert response.status_code == 413
    job.refresh_from_db()
    assert job.status == "IN_PROGRESS"


def test_nul_bytes_and_odd_ids_are_refusals(setting):
    mine, worker, secret, job, *_ = setting
    for path in (
        f"/v2/{mine.public_id}%00/ping/{worker.public_id}",
        f"/v2/{mine.public_id}/ping/{worker.public_id}%00",
        f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}%00",
    ):
        response = Client().post(path, "{}", content_type=FORM, HTTP_AUTHORIZATION=secret)
        assert response.status_code in (200, 401, 404, 405)
    job.refresh_from_db()
    assert job.status == Job.Status.IN_PROGRESS


def test_a_nul_character_in_a_result_fails_the_job_instead_of_a_500(setting):
    mine, worker, secret, job, *_ = setting
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    assert post(url, {"output": {"k\x00": "v"}}, secret).status_code == 200
    job.refresh_from_db()
    assert job.status == "FAILED" and "NUL" in job.error
    ping = f"/v2/{mine.public_id}/ping/{worker.public_id}"
    query = {"job_id": "a\x00b", "runpod_version": "1\x00", "status": "unhealthy", "reason": "\x00"}
    assert Client().get(ping, query, HTTP_AUTHORIZATION=secret).status_code == 200


def test_a_huge_error_is_cut(setting):
    mine, worker, secret, job, *_ = setting
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    post(url, {"error": "e" * 500_000}, secret)
    job.refresh_from_db()
    assert job.status == "FAILED" and len(job.error) == services.MAX_ERROR_CHARS
    assert job.error.endswith("e…")


def test_a_huge_handler_error_is_cut_to_json_the_console_still_reads(setting):
    # The SDK's error is JSON; cut blindly it would show raw. The traceback keeps its tail.
    mine, worker, secret, job, *_ = setting
    frames = "".join(f'  File "h.py", line {n}, in deep\n    "é\\"\n' for n in range(20_000))
    error = {
        "error_type": "<class 'RecursionError'>",
        "error_message": "maximum recursion depth exceeded",
        "error_traceback": "Traceback (most recent call last):\n"
        + frames
        + "RecursionError: raised",
    }
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    post(url, {"error": json.dumps(error)}, secret)
    job.refresh_from_db()
    assert len(job.error) <= services.MAX_ERROR_CHARS
    kept = json.loads(job.error)
    assert kept["error_message"] == error["error_message"]
    assert kept["error_traceback"].startswith("…") and kept["error_traceback"].endswith("raised")
    assert len(json.dumps(kept)) > services.MAX_ERROR_CHARS * 0.9  # no more cut than needed
    assert error_parts(job.error)[0] == "RecursionError: maximum recursion depth exceeded"


@pytest.mark.parametrize("depth", [5000, 200_000])
def test_an_error_nested_deeper_than_the_decoder_recurses_fails_the_job_and_its_page_shows(
    setting, alice, depth
):
    # The error is a string, so the body parses; the console parses the string again to read
    # an SDK error, and a decoder's RecursionError there was a 500 (cut: job-done; shown: pages).
    mine, worker, secret, job, *_ = setting
    url = f"/v2/{mine.public_id}/job-done/{worker.public_id}/{job.public_id}"
    assert post(url, {"error": "[" * depth + "]" * depth}, secret).status_code == 200
    job.refresh_from_db()
    assert job.status == "FAILED" and len(job.error) <= services.MAX_ERROR_CHARS
    client = login(alice)
    page = client.get(f"/t/{mine.team.slug}/serverless/{mine.public_id}/jobs/{job.public_id}/")
    assert page.status_code == 200 and "[[[[" in page.content.decode()
    assert client.get(f"/t/{mine.team.slug}/serverless/{mine.public_id}/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_pods_own_v2_paths_on_its_origin_reach_the_pod_proxy_not_the_worker_protocol(
    setting, settings
):
    """The pod proxy is outermost: /v2/... on <pod>-<port>.PROXY_DOMAIN is the pod's page."""
    from asgiref.sync import async_to_sync

    from console.asgi import application
    from tests.pods.connect_helpers import Call

    settings.PROXY_DOMAIN = "proxy.localhost"
    settings.SERVERLESS_JOB_TAKE_HOLD = 0.2
    mine, worker, secret, *_ = setting
    call = Call(
        "GET",
        f"/v2/{mine.public_id}/job-take/{worker.public_id}",
        [(b"authorization", secret.encode())],
        host="nosuchpod12345-8080.proxy.localhost",
    )
    reply = async_to_sync(call.run)(application)
    assert reply.status not in (200, 204, 401), reply.status  # the worker protocol's answers
