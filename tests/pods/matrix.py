from pods.models import NetworkVolume, PodTemplate
from tests.pods.factories import catalogue, stopped_pod
from tests.role_matrix import Route


def a_pod(team) -> dict:
    parts = catalogue()
    return {"pod_id": stopped_pod(team, parts["machine"]).public_id}


def a_template(team) -> dict:
    template = PodTemplate.objects.create(team=team, name="Mine", image="ubuntu:22.04")
    return {"template_id": template.public_id}


def a_volume(team) -> dict:
    parts = catalogue()
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    return {"volume_id": volume.public_id}


ROUTES = [
    Route("pod_list", "use"),
    Route("pod_deploy", "deploy", ("GET", "POST")),
    Route("pod_detail", "use", make_kwargs=a_pod),
    Route("pod_logs", "use", make_kwargs=a_pod),
    # A stopped pod: stop refuses with a message, start finds no funds; both are allowed calls.
    Route("pod_stop", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_start", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_restart", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_terminate", "deploy", ("POST",), make_kwargs=a_pod),
    Route("pod_rename", "deploy", ("POST",), make_kwargs=a_pod, data={"name": "renamed"}),
    Route("pod_timer", "deploy", ("POST",), make_kwargs=a_pod, data={"action": "stop"}),
    Route("template_list", "use"),
    Route("template_create", "deploy", ("GET", "POST")),
    Route("template_edit", "deploy", ("GET", "POST"), make_kwargs=a_template),
    Route("template_delete", "deploy", ("POST",), make_kwargs=a_template),
    Route("storage", "use"),
    Route("network_volume_create", "deploy", ("POST",)),
    Route("network_volume_grow", "deploy", ("POST",), make_kwargs=a_volume, data={"size_gb": 20}),
    Route("network_volume_delete", "deploy", ("POST",), make_kwargs=a_volume),
]
