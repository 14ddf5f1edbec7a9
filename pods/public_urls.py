"""pods URLs outside any team (webhooks, public links)."""

urlpatterns: list = []
