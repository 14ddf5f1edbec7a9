"""Staff list a hosted machine through its review (burn-in, then public), never by the admin's
list checkbox or change form, which would skip the review."""

from django.urls import reverse

from pods.models import Machine
from tests.hosting.conftest import register
from tests.pods.test_machine_admin import staff


def changelist_post(client, machine: Machine, *, is_listed: bool):
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(machine.pk),
        "form-0-is_online": "on" if machine.is_online else "",
        "_save": "Save",
    }
    if is_listed:
        data["form-0-is_listed"] = "on"
    return client.post(reverse("admin:pods_machine_changelist"), data)


def test_the_list_checkbox_cannot_list_a_machine_under_review(host, parts):
    hosted = register(host, parts)
    client = staff()
    response = changelist_post(client, hosted.machine, is_listed=True)
    assert response.status_code == 302
    assert not Machine.objects.get(pk=hosted.machine_id).is_listed


def test_the_list_checkbox_still_unlists_the_operators_own_machine(parts):
    machine = parts["machine"]
    assert machine.is_listed and machine.host_team_id is None
    client = staff()
    changelist_post(client, machine, is_listed=False)
    assert not Machine.objects.get(pk=machine.pk).is_listed


def test_the_change_form_shows_a_hosted_machines_listing_read_only(host, parts):
    hosted = register(host, parts)
    page = staff().get(reverse("admin:pods_machine_change", args=[hosted.machine_id]))
    assert page.status_code == 200
    assert b'name="is_listed"' not in page.content
    assert b'name="burn_in"' not in page.content
