"""The public front page at /: what the cloud offers, live prices and free GPUs, for visitors."""

import pytest
from django.core.cache import cache
from django.test import Client

from pods.models import Pod
from tests.conftest import login
from tests.pods.factories import catalogue, stopped_pod


@pytest.fixture
def parts(db):
    cache.clear()  # the offers are cached across requests, and the cache outlives a test
    return catalogue()


def test_it_shows_a_visitor_gpu_prices_and_free_gpus(parts, team):
    stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=1)
    page = Client().get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-gpu="A40"' in html and 'data-gpu="RTX 4090"' in html
    assert "$0.79/h" in html and "$0.47/h" in html and "$0.28/h" in html  # secure, community, spot
    assert "$0.34/h" in html and "$0.06/h" in html  # the 4090 in community, the CPU instance
    assert "3 free" in html  # 4 A40s, one held by the running pod
    assert "2 free" in html
    assert 'href="/accounts/signup/"' in html and 'href="/accounts/login/"' in html
    assert "$0.07/GB/month" in html  # network volume storage, from pods.pricing


def test_it_says_when_no_gpu_is_free(parts, team):
    stopped_pod(team, parts["rtx_machine"], status=Pod.Status.RUNNING, gpu_count=2)
    html = Client().get("/").content.decode()
    assert "none free" in html


def test_it_costs_three_queries_then_none_while_cached(parts, django_assert_num_queries):
    with django_assert_num_queries(3):  # GPU types, machines with capacity, CPU types
        assert Client().get("/").status_code == 200
    with django_assert_num_queries(0):
        assert Client().get("/").status_code == 200


def test_it_is_cacheable_for_visitors_and_sets_no_cookie(parts):
    page = Client().get("/")
    assert "public" in page["Cache-Control"] and "max-age=30" in page["Cache-Control"]
    assert "Cookie" in page["Vary"]
    assert not page.cookies  # no CSRF or session cookie: a shared cache may keep it


def test_a_referral_link_answer_is_for_the_visitor_only(parts, alice):
    page = Client().get(f"/?ref={alice.referral_code}")
    assert page.status_code == 200
    assert "private" in page["Cache-Control"] and "public" not in page["Cache-Control"]
    assert page.cookies  # the referral cookie


def test_it_sends_a_signed_in_person_to_their_dashboard(parts, alice, team):
    page = login(alice).get("/")
    assert page.status_code == 302
    assert page["Location"].startswith("/t/")
    assert "public" not in page.get("Cache-Control", "")
