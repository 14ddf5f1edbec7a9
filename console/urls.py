from django.contrib import admin
from django.urls import include, path

from api.graphql.view import GraphqlView
from console import views

# Everything a team owns lives under /t/<team>/, so an outsider's request is a 404 by URL.
team_urls = [
    path("", views.dashboard, name="dashboard"),
    path("", include("teams.urls")),
    path("billing/", include("billing.urls")),
    path("referrals/", include("referrals.urls")),
    path("", include("pods.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("api.urls")),
    path("graphql", GraphqlView.as_view(), name="graphql"),
    path("", include("teams.public_urls")),
    path("billing/", include("billing.public_urls")),
    path("", include("pods.public_urls")),
    path("t/<slug:team>/", include(team_urls)),
]
