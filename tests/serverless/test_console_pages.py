"""The serverless console pages, server side: the list's per-endpoint counts (one query), the
endpoint page's live partial (health, percentiles computed by PostgreSQL, requests per minute),
the request tester's validation and live status, escaping of what workers control (job output,
errors, pod logs) and the worker log's access rules."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pods import services as pod_services
from pods.models import CpuInstanceType, GpuType, Pod
from serverless import services, stats
from serverless.forms import EndpointForm
from serverless.models import Job, Worker
from tests.conftest import login
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import deploy_request, fund, stopped_pod
from tests.serverless.factories import a_worker, an_endpoint
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

HOSTILE = '</code></pre><script>alert("pwned")</script><img src=x onerror=alert(1)>'
BASE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def job_at(endpoint, status: str, *, delay_ms: int = 0, run_ms: int = 0, **fields) -> Job:
    """A job that waited `delay_ms` in the queue and ran `run_ms` (real rows, exact times)."""
    started = BASE + timedelta(milliseconds=delay_ms)
    return Job.objects.create(
        endpoint=endpoint,
        input=fields.pop("input", {"n": 1}),
        execution_timeout=600,
        status=status,
        created_at=fields.pop("created_at", BASE),
        started_at=started if status != Job.Status.IN_QUEUE else None,
        completed_at=started + timedelta(milliseconds=run_ms) if status in Job.FINAL else None,
        **fields,
    )


def worker_in(endpoint, state: str) -> Worker:
    worker, _ = a_worker(endpoint)
    Worker.objects.filter(pk=worker.pk).update(state=state)
    return worker


def detail(client, endpoint, partial: str = "") -> str:
    url = endpoint.get_absolute_url() + (f"?partial={partial}" if partial else "")
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_it_lists_job_and_worker_counts_per_endpoint(team, alice, parts):  # noqa: F811
    busy, quiet = an_endpoint(team, name="busy"), an_endpoint(team, name="quiet")
    for status, count in [("IN_QUEUE", 3), ("IN_PROGRESS", 2), ("COMPLETED", 4), ("FAILED", 1)]:
        for _ in range(count):
            job_at(busy, status)
    job_at(quiet, "COMPLETED")
    job_at(quiet, "CANCELLED")
    for state in ["running", "running", "idle", "throttled", "stopped"]:
        worker_in(busy, state)
    worker_in(quiet, "initializing")
    response = login(alice).get(reverse("endpoint_list", args=[team.slug]))
    by_name = {endpoint.name: endpoint for endpoint in response.context["endpoints"]}
    counts = [f"jobs_{n}" for n in ("in_queue", "in_progress", "completed", "failed")]
    assert [getattr(by_name["busy"], name) for name in counts] == [3, 2, 4, 1]
    assert [getattr(by_name["quiet"], name) for name in counts] == [0, 0, 1, 0]
    assert dict(by_name["busy"].worker_counts) == {
        "initializing": 0,
        "idle": 1,
        "running": 2,
        "throttled": 1,
        "unhealthy": 0,
    }
    assert by_name["quiet"].worker_total == 1
    html = response.content.decode()
    assert 'data-state="running">2 running<' in html and "1 × A40" in html


def test_the_list_counts_in_one_query_whatever_the_number_of_endpoints(team, alice):
    client, url = login(alice), reverse("endpoint_list", args=[team.slug])

    def page_queries() -> list[str]:
        with CaptureQueriesContext(connection) as context:
            assert client.get(url).status_code == 200
        return [query["sql"] for query in context.captured_queries]

    def counting(sql: list[str]) -> list[str]:
        return [text for text in sql if "serverless_job" in text or "serverless_worker" in text]

    for n in range(2):
        job_at(an_endpoint(team, name=f"e{n}"), "IN_QUEUE")
    few = page_queries()
    cpu = CpuInstanceType.objects.create(
        id="cpu3c-2-4", name="Compute", vcpu=2, memory_gb=4, price="0.06", serverless_price="0.36"
    )
    for n in range(10):
        compute = {"gpu_type_ids": [], "cpu_instance": cpu} if n % 2 else {}
        endpoint = an_endpoint(team, name=f"more {n}", **compute)
        job_at(endpoint, "COMPLETED")
        worker_in(endpoint, "idle")
    many = page_queries()
    assert "CPU Compute" in client.get(url).content.decode()
    assert "$0.0001/s per worker" in client.get(url).content.decode()  # $0.36/h
    assert len(counting(few)) == len(counting(many)) == 1  # the endpoints, every count annotated
    assert "serverless_job" in counting(many)[0] and "serverless_worker" in counting(many)[0]
    assert len(few) == len(many) <= 12


def test_the_list_partial_is_what_the_page_polls(team, alice):
    job_at(an_endpoint(team), "IN_QUEUE")
    url = reverse("endpoint_list", args=[team.slug])
    html = login(alice).get(url + "?partial=table").content.decode()
    assert "<html" not in html
    assert f'hx-get="{url}?partial=table"' in html and 'data-count="in_queue">1<' in html


def test_percentiles_are_postgresqls_percentile_cont_over_completed_jobs(team, alice):
    endpoint = an_endpoint(team)
    for n in range(1, 11):  # execution 100 .. 1000 ms, delay 10 .. 100 ms
        job_at(endpoint, "COMPLETED", delay_ms=10 * n, run_ms=100 * n)
    job_at(endpoint, "FAILED", delay_ms=5000, run_ms=90_000)  # not a completed job
    job_at(endpoint, "IN_PROGRESS", delay_ms=7000)
    job_at(an_endpoint(team, name="other"), "COMPLETED", run_ms=50_000)
    result = stats.percentiles(endpoint)
    # Linear interpolation at (n - 1) * p: p50 between the 5th and 6th value, and so on.
    assert result == {
        "count": 10,
        "execution": {"p50": 550, "p90": 910, "p99": 991},
        "delay": {"p50": 55, "p90": 91, "p99": 99},
    }
    html = detail(login(alice), endpoint, "live")
    assert '<td class="text-end text-nowrap" data-p="p99">991 ms</td>' in html
    assert "Over the 10 most recent completed jobs" in html


def test_percentiles_look_only_at_the_most_recent_completed_jobs(team, monkeypatch):
    endpoint = an_endpoint(team)
    job_at(endpoint, "COMPLETED", run_ms=9000, created_at=BASE - timedelta(hours=1))
    Job.objects.filter(endpoint=endpoint).update(completed_at=BASE - timedelta(minutes=50))
    for _ in range(3):
        job_at(endpoint, "COMPLETED", run_ms=200)
    monkeypatch.setattr(stats, "RECENT_COMPLETED", 3)
    assert stats.percentiles(endpoint)["execution"] == {"p50": 200, "p90": 200, "p99": 200}


def test_no_completed_job_means_no_percentiles(team, alice):
    endpoint = an_endpoint(team)
    assert stats.percentiles(endpoint) == {
        "count": 0,
        "execution": {"p50": None, "p90": None, "p99": None},
        "delay": {"p50": None, "p90": None, "p99": None},
    }
    assert "No completed jobs yet:" in detail(login(alice), endpoint)


def submit_at(endpoint, when: datetime, count: int = 1) -> None:
    with time_machine.travel(when, tick=False):
        for _ in range(count):
            services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})


def test_requests_per_minute_count_submissions_over_the_last_hour(team, alice):
    fund(team)
    endpoint, other = an_endpoint(team), an_endpoint(team, name="other")
    now = BASE + timedelta(seconds=42)
    submit_at(endpoint, now - timedelta(minutes=61))  # older than the hour
    submit_at(endpoint, now - timedelta(minutes=59), 1)  # the first minute shown
    submit_at(endpoint, now - timedelta(minutes=5), 2)
    submit_at(endpoint, now - timedelta(seconds=40), 3)  # this minute (12:00)
    submit_at(other, now, 4)
    Job.objects.all().delete()  # results expire; the requests still count
    series = stats.requests_per_minute(endpoint, now)
    assert len(series["values"]) == 60 and sum(series["values"]) == 6
    assert (series["labels"][0], series["labels"][-1]) == ("11:01", "12:00")
    assert (series["values"][0], series["values"][-6], series["values"][-1]) == (1, 2, 3)
    with time_machine.travel(now, tick=False):
        html = detail(login(alice), endpoint, "live")
    assert '<script id="endpoint-rpm-data" type="application/json">' in html
    assert '"values": [1, 0,' in html


def test_the_page_shows_the_endpoint_urls_a_curl_and_an_sdk_example(team, alice, parts):  # noqa: F811
    endpoint = an_endpoint(team, gpu_type_ids=["NVIDIA GeForce RTX 4090", "NVIDIA A40"])
    html = detail(login(alice), endpoint)
    base = f"http://testserver/v2/{endpoint.public_id}"
    for path in ["/run", "/runsync", "/status/JOB_ID", "/health"]:
        assert f'value="{base}{path}"' in html
    assert f"curl -X POST {base}/runsync" in html and 'data-copy="#curl-example"' in html
    assert 'runpod.endpoint_url_base = "http://testserver/v2"' in html
    assert f'runpod.Endpoint("{endpoint.public_id}")' in html
    assert 'data-copy="#sdk-example"' in html
    assert "in order: RTX 4090 › A40" in html
    assert 'hx-trigger="every 3s, refresh"' in html and "js/serverless.js" in html


def send_to_tester(client, endpoint, text: str, htmx: bool = True):
    url = reverse("endpoint_test_job", args=[endpoint.team.slug, endpoint.public_id])
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(url, {"input": text}, headers=headers)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{nope", "Not valid JSON: Expecting property name enclosed in double quotes"),
        ("", "This field is required."),
        ('{"a": "\\u0000"}', "NUL character"),
        ("[" * 5000 + "]" * 5000, "Not valid JSON: JSON nested too deeply"),
    ],
)
def test_the_tester_refuses_bad_input_with_a_clear_error(team, alice, text, error):
    fund(team)
    endpoint = an_endpoint(team)
    response = send_to_tester(login(alice), endpoint, text)  # from htmx: shown in place
    assert response.status_code == 200 and not Job.objects.exists()
    html = response.content.decode()
    assert 'data-testid="tester-error"' in html and error in html and "<html" not in html
    page = send_to_tester(login(alice), endpoint, text, htmx=False)
    assert page.status_code == 400 and error in page.content.decode()


def test_the_tester_answers_with_the_jobs_live_status_until_it_ends(team, alice):
    fund(team)
    endpoint = an_endpoint(team)
    client = login(alice)
    html = send_to_tester(client, endpoint, '{"prompt": "hi"}').content.decode()
    job = Job.objects.get()
    status_url = reverse("endpoint_job", args=[team.slug, endpoint.public_id, job.public_id])
    assert job.input == {"prompt": "hi"} and "IN_QUEUE" in html
    assert f'hx-get="{status_url}?partial=status" hx-trigger="every 1s, refresh"' in html
    worker, _ = a_worker(endpoint)
    services.claim_jobs(worker=worker, count=1)
    services.record_result(worker=worker, job_id=job.public_id, body={"output": {"x": [1, 2]}})
    done = client.get(status_url + "?partial=status").content.decode()
    assert "COMPLETED" in done and "hx-trigger" not in done
    assert 'data-testid="job-output">{\n  &quot;x' in done


def test_hostile_job_output_and_errors_are_escaped_everywhere(team, alice):
    endpoint = an_endpoint(team)
    job_at(endpoint, "COMPLETED", output={"html": HOSTILE}, input={"q": HOSTILE})
    failed = job_at(endpoint, "FAILED", error=HOSTILE)
    worker = worker_in(endpoint, "unhealthy")  # what a worker's ping reports, shown too
    Worker.objects.filter(pk=worker.pk).update(in_flight=[HOSTILE[:64]], unhealthy_reason=HOSTILE)
    client = login(alice)
    pages = [detail(client, endpoint), detail(client, endpoint, "live")]
    for job in Job.objects.all():
        url = reverse("endpoint_job", args=[team.slug, endpoint.public_id, job.public_id])
        pages += [
            client.get(url).content.decode(),
            client.get(url + "?partial=status").content.decode(),
        ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in pages[1]  # the recent jobs' previews
    assert failed.public_id in pages[1] and worker.public_id in pages[1]


def test_worker_rows_show_state_kind_gpu_and_their_pod(team, alice, parts):  # noqa: F811
    endpoint = an_endpoint(team)
    pod = stopped_pod(team, parts["machine"], kind=Pod.Kind.WORKER, status=Pod.Status.RUNNING)
    worker = worker_in(endpoint, "idle")
    now = timezone.now()
    Worker.objects.filter(pk=worker.pk).update(
        pod=pod, gpu_type=parts["a40"], is_flex=False, ready_at=now, last_seen_at=now
    )
    old = worker_in(endpoint, "stopped")
    Worker.objects.filter(pk=old.pk).update(stopped_at=now, stop_reason="idle timeout")
    long_gone = worker_in(endpoint, "stopped")
    Worker.objects.filter(pk=long_gone.pk).update(stopped_at=now - timedelta(hours=1))
    endpoint.version = 2
    endpoint.save()
    client = login(alice)
    html = detail(client, endpoint, "live")
    row = html[html.index(f'data-worker="{worker.public_id}"') :].split("</tr>")[0]
    assert ">Idle<" in row and ">stale<" in row and "<td>active</td>" in row and "A40" in row
    assert f'href="{pod.get_absolute_url()}"' in row and 'data-testid="worker-logs-button"' in row
    assert "idle timeout" in html and long_gone.public_id not in html
    assert client.get(pod.get_absolute_url()).status_code == 200  # the link leads somewhere


@pytest.mark.django_db(transaction=True)
def test_a_workers_log_is_its_pods_log_escaped(team, alice, parts):  # noqa: F811
    fund(team)
    command = f"echo '{HOSTILE}'; echo started; exec sleep 600"
    request = deploy_request(parts["a40"], start_command=command)
    pod = pod_services.deploy_pod(actor=alice, team=team, request=request)
    endpoint = an_endpoint(team)
    worker = worker_in(endpoint, "running")
    Worker.objects.filter(pk=worker.pk).update(pod=pod)
    url = reverse("endpoint_worker_logs", args=[team.slug, endpoint.public_id, worker.public_id])
    client = login(alice)
    html = wait_for(lambda: (t := client.get(url).content.decode()) and "started" in t and t)
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert "<script>" not in html and "<img" not in html
    assert f'href="{reverse("pod_logs", args=[team.slug, pod.public_id])}"' in html  # full log


def test_a_worker_without_a_pod_says_where_its_log_is(team, alice):
    endpoint = an_endpoint(team)
    worker, _ = a_worker(endpoint)
    url = reverse("endpoint_worker_logs", args=[team.slug, endpoint.public_id, worker.public_id])
    assert "registered by hand" in login(alice).get(url).content.decode()


def test_worker_logs_are_team_only(team, alice, charlie, member_with_role):
    endpoint = an_endpoint(team)
    worker, _ = a_worker(endpoint)
    url = reverse("endpoint_worker_logs", args=[team.slug, endpoint.public_id, worker.public_id])
    assert login(charlie).get(url).status_code == 404
    assert member_with_role("billing").get(url).status_code == 403
    assert member_with_role("basic").get(url).status_code == 200
    theirs = an_endpoint(charlie.memberships.get().team)
    their_worker, _ = a_worker(theirs)
    other = reverse(
        "endpoint_worker_logs", args=[team.slug, endpoint.public_id, their_worker.public_id]
    )
    assert login(alice).get(other).status_code == 404  # another endpoint's worker


def test_a_basic_member_sees_the_page_but_no_tester(team, member_with_role):
    endpoint = an_endpoint(team)
    basic = member_with_role("basic")
    html = detail(basic, endpoint)
    assert 'data-testid="test-job-form"' not in html and "Dev and Admin members" in html
    assert send_to_tester(basic, endpoint, "{}").status_code == 403


def test_the_dashboards_deploy_step_points_at_serverless_endpoints(team, alice):
    html = login(alice).get(reverse("dashboard", args=[team.slug])).content.decode()
    url = reverse("endpoint_list", args=[team.slug])
    assert f'<a href="{url}" data-testid="serverless-step-link">' in html


def test_a_jobs_page_shows_its_webhooks_last_delivery_escaped(team, alice):
    endpoint = an_endpoint(team)
    job = job_at(
        endpoint,
        "COMPLETED",
        webhook="https://hooks.example.com/done",
        webhook_attempts=3,
        webhook_result=f"HTTP 500 {HOSTILE}"[:300],
    )
    url = reverse("endpoint_job", args=[team.slug, endpoint.public_id, job.public_id])
    html = login(alice).get(url).content.decode()
    webhook = html[html.index('data-testid="job-webhook"') :].split("</dd>")[0]
    assert "https://hooks.example.com/done" in webhook and "not delivered · 3 attempts" in webhook
    assert "last: HTTP 500 &lt;/code&gt;" in webhook and "<script>" not in html


def test_the_tester_says_plainly_when_low_funds_refuse_the_job(team, alice):
    endpoint = an_endpoint(team, funded=False)  # the team has no credit
    html = send_to_tester(login(alice), endpoint, "{}").content.decode()
    assert 'data-testid="tester-error"' in html and "add credit to send jobs" in html
    page = send_to_tester(login(alice), endpoint, "{}", htmx=False)
    assert page.status_code == 402 and not Job.objects.exists()


def test_durations_read_in_the_unit_a_person_reads_them_in(team, alice):
    endpoint = an_endpoint(team)
    job_at(endpoint, "COMPLETED", delay_ms=850, run_ms=12_345)
    job_at(endpoint, "COMPLETED", delay_ms=125_000, run_ms=3_725_000)
    html = detail(login(alice), endpoint, "live")
    assert ">850 ms<" in html and ">12.3 s<" in html  # the recent jobs
    assert ">2m 5s<" in html and ">1h 2m<" in html
    assert "12345 ms" not in html


def test_a_handlers_exception_reads_as_its_type_and_message_with_the_traceback_apart(team, alice):
    endpoint = an_endpoint(team)
    error = json.dumps(
        {
            "error_type": "<class 'ValueError'>",
            "error_message": f"bad prompt {HOSTILE}",
            "error_traceback": 'Traceback (most recent call last):\n  File "handler.py"',
        }
    )
    failed = job_at(endpoint, "FAILED", error=error)
    plain = job_at(endpoint, "FAILED", error="The worker stopped: out of memory.")
    client = login(alice)
    live = detail(client, endpoint, "live")
    assert "ValueError: bad prompt &lt;/code&gt;" in live
    assert "error_traceback" not in live and "The worker stopped: out of memory." in live
    url = reverse("endpoint_job", args=[team.slug, endpoint.public_id, failed.public_id])
    page = client.get(url).content.decode()
    assert 'data-testid="job-error">ValueError: bad prompt &lt;/code&gt;' in page
    assert 'data-testid="job-traceback">Traceback (most recent call last):\n  File' in page
    assert "<script>alert" not in page
    url = reverse("endpoint_job", args=[team.slug, endpoint.public_id, plain.public_id])
    page = client.get(url).content.decode()
    assert 'data-testid="job-error">The worker stopped: out of memory.<' in page
    assert 'data-testid="job-traceback"' not in page


def test_the_page_says_what_a_worker_costs_per_second_and_hour(team, alice, parts):  # noqa: F811
    GpuType.objects.filter(pk="NVIDIA A40").update(serverless_price=Decimal("1.44"))
    endpoint = an_endpoint(team, gpu_count=2, scaler_type="REQUEST_COUNT", scaler_value=3)
    html = detail(login(alice), endpoint)
    price = html.split('data-testid="worker-price">')[1].split("</dd>")[0]
    assert "$0.0008/s" in price and "($2.88/h) on A40" in price  # 2 GPUs x $1.44/h
    assert "a worker per 3 queued or running jobs" in html


def test_an_endpoint_without_requests_says_so_instead_of_an_empty_chart(team, alice):
    endpoint = an_endpoint(team)
    client = login(alice)
    assert 'data-testid="rpm-empty">No requests in the last hour.' in detail(client, endpoint)
    assert 'data-testid="no-jobs">No jobs in the last 30 minutes. Send one' in detail(
        client, endpoint
    )
    fund(team)
    send_to_tester(client, endpoint, "{}")
    assert 'data-testid="rpm-empty" hidden>' in detail(client, endpoint)


def test_the_form_explains_its_settings_and_prices_the_gpus(team, alice, parts):  # noqa: F811
    GpuType.objects.filter(pk="NVIDIA A40").update(serverless_price=Decimal("1.44"))
    client = login(alice)
    html = client.get(reverse("endpoint_create", args=[team.slug])).content.decode()
    assert f'href="{reverse("template_create", args=[team.slug])}">create a template' in html
    assert ">Idle timeout (s)<" in html and "before it stops" in html
    assert ">Active workers (min)<" in html and "billed even when idle" in html
    assert "A40 · 48 GB · $1.44/h</option>" in html
    assert 'aria-describedby="id_idle_timeout_helptext"' in html
    assert 'id="id_idle_timeout_helptext"' in html
    assert 'data-compute="cpu"' in html and "js/serverless.js" in html


def test_a_bad_variable_name_is_named_in_the_error(team, alice):
    form = EndpointForm({"env_text": "OK=1\n1BAD=x"}, team=team)
    assert not form.is_valid()
    assert form.errors["env_text"][0].startswith("'1BAD': A variable name is")
