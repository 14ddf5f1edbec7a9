from django.apps import AppConfig


class PodsConfig(AppConfig):
    name = "pods"
