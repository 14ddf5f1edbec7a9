"""Team-scoped serverless pages, mounted under /t/<team>/serverless/."""

from django.urls import path

from serverless import views

urlpatterns = [
    path("", views.endpoint_list, name="endpoint_list"),
    path("new/", views.endpoint_create, name="endpoint_create"),
    path("<slug:endpoint_id>/", views.endpoint_detail, name="endpoint_detail"),
    path("<slug:endpoint_id>/edit/", views.endpoint_edit, name="endpoint_edit"),
    path("<slug:endpoint_id>/delete/", views.endpoint_delete, name="endpoint_delete"),
    path("<slug:endpoint_id>/test/", views.endpoint_test_job, name="endpoint_test_job"),
    path("<slug:endpoint_id>/jobs/<str:job_id>/", views.endpoint_job, name="endpoint_job"),
    path(
        "<slug:endpoint_id>/workers/<slug:worker_id>/logs/",
        views.endpoint_worker_logs,
        name="endpoint_worker_logs",
    ),
]
