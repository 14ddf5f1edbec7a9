import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from teams.access import CAPABILITIES, get_membership, role_can
from teams.models import Role

# SPEC.md's matrix, spelled out independently of teams.access.CAPABILITIES.
SPEC_MATRIX = {
    "use": {"basic", "dev", "admin"},
    "deploy": {"dev", "admin"},
    "billing": {"billing", "admin"},
    "admin": {"admin"},
    "member": {"basic", "billing", "dev", "admin"},
}


@pytest.mark.parametrize("capability", sorted(SPEC_MATRIX))
@pytest.mark.parametrize("role", [r.value for r in Role])
def test_it_matches_the_spec_matrix(role, capability):
    assert role_can(role, capability) == (role in SPEC_MATRIX[capability])


def test_it_has_no_capability_outside_the_spec():
    assert set(CAPABILITIES) == set(SPEC_MATRIX)


def test_it_hides_teams_from_outsiders(team, charlie):
    with pytest.raises(Http404):
        get_membership(charlie, team.slug, "member")


def test_it_refuses_members_lacking_the_capability(team, bob):
    with pytest.raises(PermissionDenied):
        get_membership(bob, team.slug, "admin")


def test_it_returns_the_membership(team, alice):
    assert get_membership(alice, team.slug, "admin").team == team
