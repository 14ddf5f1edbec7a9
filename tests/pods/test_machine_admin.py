"""The admin's "test connection" action on machines."""

from django.contrib.messages import get_messages
from django.urls import reverse

from pods.models import Machine
from tests.conftest import login, make_user


def staff():
    user = make_user("staff@example.com")
    user.is_staff = user.is_superuser = True
    user.save()
    return login(user)


def run_action(client, *machines: Machine) -> list[str]:
    response = client.post(
        reverse("admin:pods_machine_changelist"),
        {"action": "test_connection", "_selected_action": [m.pk for m in machines]},
    )
    assert response.status_code == 302
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_it_reports_the_process_runtime_and_an_unreachable_engine(parts):
    docker_box = parts["rtx_machine"]
    docker_box.runtime = "docker"
    docker_box.runtime_settings = {"base_url": "unix:///nonexistent/docker.sock", "timeout": 2}
    docker_box.save()
    texts = run_action(staff(), parts["machine"], docker_box)
    assert "a40-box: process runtime: pods run on the console's host, bubblewrap sandbox." in texts
    failure = next(text for text in texts if text.startswith("4090-box"))
    assert "connection failed: Could not connect to the container engine" in failure
    assert "unix:///nonexistent/docker.sock" in failure
