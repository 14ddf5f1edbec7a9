"""Team-scoped pods pages, mounted under /t/<team>/."""

from django.urls import path

from pods import views
from pods.connect import views as connect

urlpatterns = [
    path("pods/", views.pod_list, name="pod_list"),
    path("pods/deploy/", views.pod_deploy, name="pod_deploy"),
    path("pods/<slug:pod_id>/", views.pod_detail, name="pod_detail"),
    path("pods/<slug:pod_id>/logs/", views.pod_logs, name="pod_logs"),
    path("pods/<slug:pod_id>/stop/", views.pod_stop, name="pod_stop"),
    path("pods/<slug:pod_id>/start/", views.pod_start, name="pod_start"),
    path("pods/<slug:pod_id>/restart/", views.pod_restart, name="pod_restart"),
    path("pods/<slug:pod_id>/terminate/", views.pod_terminate, name="pod_terminate"),
    path("pods/<slug:pod_id>/rename/", views.pod_rename, name="pod_rename"),
    path("pods/<slug:pod_id>/timer/", views.pod_timer, name="pod_timer"),
    path("templates/", views.template_list, name="template_list"),
    path("templates/new/", views.template_create, name="template_create"),
    path("templates/<slug:template_id>/edit/", views.template_edit, name="template_edit"),
    path("templates/<slug:template_id>/delete/", views.template_delete, name="template_delete"),
    path("storage/", views.storage, name="storage"),
    path("storage/volumes/new/", views.network_volume_create, name="network_volume_create"),
    path(
        "storage/volumes/<slug:volume_id>/grow/",
        views.network_volume_grow,
        name="network_volume_grow",
    ),
    path(
        "storage/volumes/<slug:volume_id>/delete/",
        views.network_volume_delete,
        name="network_volume_delete",
    ),
    path("pods/<slug:pod_id>/terminal/", connect.pod_terminal, name="pod_terminal"),
    path("pods/<slug:pod_id>/proxy-access/", connect.pod_proxy_access, name="pod_proxy_access"),
    path("settings/ssh-keys/", connect.ssh_keys, name="ssh_keys"),
    path("settings/ssh-keys/<slug:key_id>/delete/", connect.ssh_key_delete, name="ssh_key_delete"),
    path("settings/registries/", connect.registry_credentials, name="registry_credentials"),
    path(
        "settings/registries/<slug:credential_id>/delete/",
        connect.registry_credential_delete,
        name="registry_credential_delete",
    ),
]
