"""A serverless worker's pod is hostile code with one way out to the console: the worker
gateway. As an attacker inside a real WORKER pod (process runtime, bubblewrap), and on the
gateway's socket directly, nothing but the worker protocol answers, and only for the worker
whose secret is sent; a pod of kind POD gets no gateway at all."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from pods import services as pod_services
from pods.models import Pod as PodRow
from pods.runtime import PodSpec, get_backend
from pods.runtime.base import WORKER_GATEWAY_TARGET, pod_data_dir
from serverless import services
from serverless.gateway import GATEWAY_PORT
from serverless.launch import start_worker
from serverless.models import Job
from serverless.worker_bootstrap import forwarder_script
from tests.pods.conftest import pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import catalogue, deploy_request, fund
from tests.pods.podman import RUN_PREFIX, podman_url  # noqa: F401 (a fixture)
from tests.security.conftest import console_listener, needs_root  # noqa: F401 (a fixture)
from tests.serverless.factories import a_worker, an_endpoint
from tests.serverless.gateway_live import (  # noqa: F401 (fixtures)
    GATEWAY_URL,
    gateway,
    gateway_data_dir,
    request,
    worker_settings,
)
from tests.serverless.worker_image import worker_image
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_settings")]


@pytest.fixture
def cast(team, charlie):
    """Acme's endpoint with two workers and a job on the first; charlie's endpoint and worker."""
    fund(team)
    mine = an_endpoint(team)
    worker, secret = a_worker(mine)
    sibling, _ = a_worker(mine)
    job = services.submit_job(actor=None, endpoint=mine, payload={"input": {"n": 1}})
    services.claim_jobs(worker=worker, count=1)
    theirs = an_endpoint(charlie.memberships.get().team)
    other, _ = a_worker(theirs)
    return {
        "mine": mine.public_id,
        "worker": worker.public_id,
        "secret": secret,
        "sibling": sibling.public_id,
        "job": job.public_id,
        "theirs": theirs.public_id,
        "other": other.public_id,
    }


def console_paths(c: dict) -> list[tuple[str, str]]:
    """What a worker must never reach: pages, admin, APIs, the client job API, the proxy."""
    e, job = c["mine"], c["job"]
    return [
        ("GET", "/"),
        ("GET", "/admin/"),
        ("GET", "/admin/login/"),
        ("GET", "/accounts/login/"),
        ("GET", "/api/v1/pods"),
        ("POST", "/graphql"),
        ("POST", f"/v2/{e}/run"),
        ("POST", f"/v2/{e}/runsync"),
        ("GET", f"/v2/{e}/health"),
        ("GET", f"/v2/{e}/status/{job}"),
        ("POST", f"/v2/{e}/cancel/{job}"),
        ("POST", f"/v2/{e}/purge-queue"),
        ("GET", f"/v2/{e}/stream/{job}"),
        ("GET", f"/proxy/{c['worker']}-8080/"),
        ("GET", f"/v2/{e}/ping/{c['worker']}/extra"),
        ("DELETE", f"/v2/{e}/ping/{c['worker']}"),
    ]


def test_the_gateway_answers_404_to_everything_but_the_worker_routes(gateway, cast):  # noqa: F811
    auth = {"Authorization": cast["secret"]}
    for method, path in console_paths(cast):
        status, body = request(gateway, method, path, b"{}", auth)
        assert (method, path, status) == (method, path, 404), body[:200]
    status, _ = request(gateway, "GET", f"/v2/{cast['mine']}/ping/{cast['worker']}", None, auth)
    assert status == 200


def test_a_websocket_upgrade_through_the_gateway_is_refused(gateway):  # noqa: F811
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    status, _ = request(gateway, "GET", "/ws/pods/", None, headers)
    assert status != 101


def test_client_chosen_routing_headers_change_nothing(gateway, cast):  # noqa: F811
    """Daphne-Root-Path would make Django route /admin/... for a path checked as a worker
    route; Host and X-Forwarded-* would pick the pod proxy or another site."""
    e, w = cast["mine"], cast["worker"]
    tricks = {
        "Daphne-Root-Path": f"/v2/{e}/ping",
        "Host": f"{w}-8080.{settings.PROXY_DOMAIN or 'localhost'}",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "for=10.0.0.1;host=evil.example",
        "Cookie": "sessionid=stolen",
    }
    status, body = request(gateway, "GET", f"/v2/{e}/ping/admin", None, tricks)
    assert (status, json.loads(body)) == (401, {"error": "Unknown worker or wrong secret."})


def test_a_workers_own_secret_opens_no_other_workers_routes(gateway, cast):  # noqa: F811
    auth = {"Authorization": cast["secret"]}
    mine, theirs, job = cast["mine"], cast["theirs"], cast["job"]
    forged = [
        ("GET", f"/v2/{theirs}/ping/{cast['other']}"),
        ("GET", f"/v2/{mine}/ping/{cast['other']}"),
        ("GET", f"/v2/{mine}/ping/{cast['sibling']}"),
        ("GET", f"/v2/{theirs}/job-take/{cast['other']}"),
        ("GET", f"/v2/{mine}/job-stop/{cast['sibling']}"),
        ("POST", f"/v2/{mine}/job-done/{cast['sibling']}/{job}"),
        ("POST", f"/v2/{theirs}/job-stream/{cast['other']}/{job}"),
    ]
    for method, path in forged:
        status, _ = request(gateway, method, path, b'{"output": "forged"}', auth)
        assert (path, status) == (path, 401)
    assert Job.objects.get(public_id=job).status == Job.Status.IN_PROGRESS


ATTACK = r"""python3 - <<'PY'
import json, os, socket, urllib.error, urllib.request
env = os.environ
report = {}
def attempt(name, action):
    try:
        report[name] = "succeeded: " + str(action())[:200]
    except Exception as error:
        report[name] = "failed: " + type(error).__name__
def connect(host, port):
    socket.create_connection((host, int(port)), timeout=3).close()
    return "connected"
def default_gateway():
    # The host's side of the pod's network: slirp4netns' 10.0.2.2, a container bridge's address.
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
report["hosts"] = ["127.0.0.1", default_gateway()]
for host in report["hosts"]:
    for name in ("CONSOLE_PORT", "POSTGRES_PORT", "REDIS_PORT"):
        attempt(name + "@" + host, lambda: connect(host, env[name]))
def http(method, path):
    ask = urllib.request.Request(env["GATEWAY"] + path, data=b"{}" if method == "POST" else None,
                                 method=method, headers={"Authorization": env["RUNPOD_AI_API_KEY"]})
    try:
        return urllib.request.urlopen(ask, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return type(error).__name__
report["http"] = {m + " " + p: http(m, p) for m, p in json.loads(env["PATHS"])}
report["own_ping"] = http("GET", env["OWN_PING"])
report["other_ping"] = http("GET", env["OTHER_PING"])
gateway = env["GATEWAY_DIR"]
attempt("write_gateway_dir", lambda: open(gateway + "/planted", "w").write("x"))
attempt("unlink_socket", lambda: os.unlink(gateway + "/gateway.sock"))
attempt("gateway_dir", lambda: os.listdir(gateway))
print("RESULT " + json.dumps(report), flush=True)
PY
exec sleep infinity"""


class Pod:
    def __init__(
        self, command: str, env: dict, worker: bool, backend=None, image: str = ""
    ) -> None:
        self.backend = backend or get_backend("process", {"sandbox": "bwrap"})
        self.spec = PodSpec(
            pod_id="atk" + secrets.token_hex(5),
            image=image or "runpod/worker",
            command=command,
            env=env,
            worker_gateway=worker,
        )
        self.handle = self.backend.start(self.spec).handle

    def report(self) -> dict:
        def line():
            for text in self.backend.read_logs(self.handle).text.splitlines():
                if text.startswith("RESULT "):
                    return json.loads(text.removeprefix("RESULT "))
            assert self.backend.poll(self.handle).state == "running"
            return None

        return wait_for(line, timeout=60)

    def close(self) -> None:
        self.backend.stop(self.handle, grace_seconds=0.5)
        self.backend.delete_pod_data(self.spec.pod_id, volume_name=None)


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    started: list[Pod] = []
    yield started
    for pod in started:
        pod.close()


def attack_env(cast: dict, console_port: int) -> dict:
    mine = cast["mine"]
    return {
        "CONSOLE_PORT": str(console_port),
        "POSTGRES_PORT": str(connection.settings_dict["PORT"]),
        "REDIS_PORT": str(urlsplit(settings.REDIS_URL).port),
        "GATEWAY": GATEWAY_URL,
        "GATEWAY_DIR": WORKER_GATEWAY_TARGET,
        "PATHS": json.dumps(console_paths(cast)),
        "OWN_PING": f"/v2/{mine}/ping/{cast['worker']}",
        "OTHER_PING": f"/v2/{cast['theirs']}/ping/{cast['other']}",
        # What serverless.services.worker_env gives: the forwarder starts for this URL.
        "RUNPOD_WEBHOOK_PING": f"{GATEWAY_URL}/v2/{mine}/ping/$RUNPOD_POD_ID",
        "RUNPOD_AI_API_KEY": cast["secret"],
    }


def test_from_inside_a_worker_pod_only_the_worker_protocol_answers(
    gateway,  # noqa: F811
    cast,
    console_listener,  # noqa: F811
    pods,
):
    needs_root()
    env = attack_env(cast, console_listener.port)
    command = forwarder_script(gateway_port=GATEWAY_PORT) + "\n" + ATTACK
    pods.append(Pod(command, env, worker=True))
    report = pods[0].report()
    assert report["hosts"] == ["127.0.0.1", "10.0.2.2"]
    assert_only_the_worker_protocol_answers(report, console_listener)


def assert_only_the_worker_protocol_answers(report: dict, console_listener) -> None:  # noqa: F811
    assert report["hosts"][1], "the pod's network has no default route"
    for host in report["hosts"]:
        for name in ("CONSOLE_PORT", "POSTGRES_PORT", "REDIS_PORT"):
            assert report[f"{name}@{host}"].startswith("failed"), (name, host)
    assert console_listener.accepted == []
    assert set(report["http"].values()) == {404}, report["http"]
    assert (report["own_ping"], report["other_ping"]) == (200, 401)
    assert report["write_gateway_dir"].startswith("failed")  # a read-only mount
    assert report["unlink_socket"].startswith("failed")


def test_a_pod_of_kind_pod_gets_no_gateway(gateway, cast, console_listener, pods):  # noqa: F811
    needs_root()
    env = attack_env(cast, console_listener.port)
    command = forwarder_script(gateway_port=GATEWAY_PORT) + "\n" + ATTACK
    pods.append(Pod(command, env, worker=False))
    report = pods[0].report()
    assert report["gateway_dir"] == "failed: FileNotFoundError"
    # Its forwarder has no socket to relay to: every request is cut off with no HTTP answer
    # (a connection error's name instead of a status).
    answers = [report["own_ping"], report["other_ping"], *report["http"].values()]
    assert [a for a in answers if not isinstance(a, str)] == [], answers
    assert console_listener.accepted == []


def test_from_inside_a_docker_worker_container_only_the_worker_protocol_answers(
    gateway,  # noqa: F811
    cast,
    console_listener,  # noqa: F811
    podman_url,  # noqa: F811
    pods,
):
    """The same attack from a WORKER container on Podman (the image has python): its bridge
    gateway is the host's side of the container's network."""
    backend = get_backend("docker", {"base_url": podman_url, "name_prefix": RUN_PREFIX})
    env = attack_env(cast, console_listener.port)
    command = forwarder_script(gateway_port=GATEWAY_PORT) + "\n" + ATTACK
    pods.append(Pod(command, env, True, backend, worker_image(podman_url)))
    assert_only_the_worker_protocol_answers(pods[0].report(), console_listener)


def mounted_targets(pod) -> list[str]:
    run = json.loads((pod_data_dir(pod.public_id) / "run" / "run.json").read_text())
    return [target for _, target, _ in run["sandbox"]["binds"]]


def test_through_the_pods_service_only_worker_pods_get_the_gateway_mount(
    pods_settings,  # noqa: F811
    reap,  # noqa: F811
    team,
    alice,
):
    needs_root()
    parts = catalogue()
    fund(team)
    pod = pod_services.deploy_pod(actor=alice, team=team, request=deploy_request(parts["a40"]))
    pod.refresh_from_db()
    assert (pod.status, pod.kind) == (PodRow.Status.RUNNING, PodRow.Kind.POD)
    assert WORKER_GATEWAY_TARGET not in mounted_targets(pod)
    worker = start_worker(an_endpoint(team), flex=True)
    worker.pod.refresh_from_db()
    assert (worker.pod.status, worker.pod.kind) == (PodRow.Status.RUNNING, PodRow.Kind.WORKER)
    assert WORKER_GATEWAY_TARGET in mounted_targets(worker.pod)
