"""Pages outside any team: invite links."""

from django.urls import path

from teams import views

urlpatterns = [
    path("invite/<str:token>/", views.invite_accept, name="invite_accept"),
]
