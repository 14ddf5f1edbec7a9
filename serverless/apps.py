from django.apps import AppConfig


class ServerlessConfig(AppConfig):
    name = "serverless"
