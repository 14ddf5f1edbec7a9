"""Team-scoped pages, mounted under /t/<team>/."""

from django.urls import path

from teams import views

urlpatterns = [
    path("team/", views.members, name="members"),
    path("team/convert/", views.convert_team, name="convert_team"),
    path("team/leave/", views.leave_team, name="leave_team"),
    path("team/members/<str:member_id>/role/", views.change_role, name="change_role"),
    path("team/members/<str:member_id>/remove/", views.remove_member, name="remove_member"),
    path("team/invites/", views.create_invite, name="create_invite"),
    path("team/invites/<str:invite_id>/revoke/", views.revoke_invite, name="revoke_invite"),
    path("settings/", views.team_settings, name="settings"),
    path("settings/api-keys/", views.api_keys, name="api_keys"),
    path("settings/api-keys/<str:key_id>/toggle/", views.api_key_toggle, name="api_key_toggle"),
    path("settings/api-keys/<str:key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("audit/", views.audit_log, name="audit_log"),
    path("audit/export.csv", views.audit_log_csv, name="audit_log_csv"),
]
