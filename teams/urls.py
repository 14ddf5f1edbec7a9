"""Team-scoped pages, mounted under /t/<team>/."""

urlpatterns: list = []
