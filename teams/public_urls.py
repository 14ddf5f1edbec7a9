"""Pages outside any team: invite links, the team switcher."""

urlpatterns: list = []
