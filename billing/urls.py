"""Team-scoped billing pages, mounted under /t/<team>/."""

urlpatterns: list = []
