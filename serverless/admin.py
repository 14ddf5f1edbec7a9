from django.contrib import admin

from serverless.models import Endpoint, Job, Worker


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("public_id", "name", "team", "workers_min", "workers_max", "version")
    search_fields = ("public_id", "name", "team__name")
    raw_id_fields = ("team", "template", "network_volume", "created_by")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("public_id", "endpoint", "status", "created_at", "completed_at", "retries")
    list_filter = ("status",)
    search_fields = ("public_id", "endpoint__public_id")
    raw_id_fields = ("endpoint", "worker", "created_by")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("public_id", "endpoint", "state", "version", "ready_at", "last_seen_at")
    list_filter = ("state",)
    search_fields = ("public_id", "endpoint__public_id")
    raw_id_fields = ("endpoint",)
    exclude = ("secret_hash",)
