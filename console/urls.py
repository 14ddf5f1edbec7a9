from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from api import views as api_views
from api.graphql.view import GraphqlView
from console import views
from hosting import api as hosting_api

# Everything a team owns lives under /t/<team>/, so an outsider's request is a 404 by URL.
team_urls = [
    path("", views.dashboard, name="dashboard"),
    path("", include("teams.urls")),
    path("billing/", include("billing.urls")),
    path("referrals/", include("referrals.urls")),
    path("", include("pods.urls")),
    path("serverless/", include("serverless.urls")),
    path("hosting/", include("hosting.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Pages without an icon link (the admin site's) make browsers ask for /favicon.ico.
    path("favicon.ico", RedirectView.as_view(url=static("img/logo.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # Public like the docs: outside api/v1/'s resolver, so not a team-scoped API action.
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_views.docs, name="api-docs"),
    # The host agent's own credential (a machine token), not a team API key: outside api.urls.
    path("api/v1/hosts/heartbeat", hosting_api.heartbeat, name="host-heartbeat"),
    path("api/v1/", include("api.urls")),
    path("graphql", GraphqlView.as_view(), name="graphql"),
    path("v1/", include("api.runpod_rest.urls")),  # RunPod's REST API v1, for runpodctl
    path("", include("teams.public_urls")),
    path("billing/", include("billing.public_urls")),
    path("", include("pods.public_urls")),
    path("", include("serverless.public_urls")),
    path("t/<slug:team>/", include(team_urls)),
]
