"""The serverless routes outside any team: the job API and the worker protocol under /v2/,
with no trailing slashes (the runpod SDK sends none). job-take, job-take-batch and job-stop
are served by serverless.asgi in front of Django."""

from django.urls import path

from serverless import api, protocol

urlpatterns = [
    path("v2/<str:endpoint_id>/run", api.run, name="v2-run"),
    path("v2/<str:endpoint_id>/runsync", api.runsync, name="v2-runsync"),
    path("v2/<str:endpoint_id>/status/<str:job_id>", api.job_status, name="v2-status"),
    path("v2/<str:endpoint_id>/stream/<str:job_id>", api.stream, name="v2-stream"),
    path("v2/<str:endpoint_id>/cancel/<str:job_id>", api.cancel, name="v2-cancel"),
    path("v2/<str:endpoint_id>/retry/<str:job_id>", api.retry, name="v2-retry"),
    path("v2/<str:endpoint_id>/purge-queue", api.purge_queue, name="v2-purge-queue"),
    path("v2/<str:endpoint_id>/health", api.health, name="v2-health"),
    path(
        "v2/<str:endpoint_id>/job-done/<str:worker_id>/<str:job_id>",
        protocol.job_done,
        name="v2-job-done",
    ),
    path(
        "v2/<str:endpoint_id>/job-stream/<str:worker_id>/<str:job_id>",
        protocol.job_stream,
        name="v2-job-stream",
    ),
    path("v2/<str:endpoint_id>/ping/<str:worker_id>", protocol.ping, name="v2-ping"),
]
