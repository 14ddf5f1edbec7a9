from django.urls import path

from referrals import views

urlpatterns = [
    path("", views.referrals, name="referrals"),
    path("payout/", views.payout_team, name="referrals_payout"),
]
