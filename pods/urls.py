"""Team-scoped pods pages, mounted under /t/<team>/."""

urlpatterns: list = []
