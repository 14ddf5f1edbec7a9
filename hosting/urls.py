"""Team-scoped hosting pages, mounted under /t/<team>/hosting/."""

from django.urls import path

from hosting import views

urlpatterns = [
    path("", views.hosting, name="hosting"),
    path("earnings/", views.hosting_earnings, name="hosting_earnings"),
    path("machines/new/", views.hosting_machine_new, name="hosting_machine_new"),
    path("machines/<slug:machine_id>/", views.hosting_machine, name="hosting_machine"),
    path(
        "machines/<slug:machine_id>/token/",
        views.hosting_machine_token,
        name="hosting_machine_token",
    ),
    path(
        "machines/<slug:machine_id>/maintenance/",
        views.hosting_maintenance,
        name="hosting_maintenance",
    ),
]
