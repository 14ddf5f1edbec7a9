from django.contrib import admin
from django.urls import include, path

from console import views

team_urls = [
    path("", views.dashboard, name="dashboard"),
    path("", include("teams.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("teams.public_urls")),
    path("t/<slug:team>/", include(team_urls)),
]
