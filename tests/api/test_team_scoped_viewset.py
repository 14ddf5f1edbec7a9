"""The base viewset fails closed: unlisted actions are refused and querysets are narrowed to
the request's team."""

import pytest
from rest_framework import mixins
from rest_framework.test import APIRequestFactory, force_authenticate

from api.viewsets import TeamScopedViewSet
from teams.models import ApiKey


class NoCapabilities(mixins.ListModelMixin, TeamScopedViewSet):
    queryset = ApiKey.objects.all()


@pytest.fixture
def request_for(team):
    def make(user):
        request = APIRequestFactory().get("/x", {"team": team.slug})
        force_authenticate(request, user=user)
        return request

    return make


def test_it_refuses_actions_missing_from_the_capability_map(request_for, alice):
    view = NoCapabilities.as_view({"get": "list"})
    assert view(request_for(alice)).status_code == 403


def test_it_rejects_unknown_capabilities(request_for, alice):
    class Broken(NoCapabilities):
        capabilities = {"list": "superpowers"}

    with pytest.raises(ValueError):
        Broken.as_view({"get": "list"})(request_for(alice))
