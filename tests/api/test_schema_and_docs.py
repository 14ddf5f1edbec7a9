"""The OpenAPI 3 schema at /api/v1/schema/ describes the REST API (and only it), and the docs
page loads Swagger UI from vendored files without any inline script."""

import re

from django.contrib.staticfiles import finders
from django.test import Client


def test_the_schema_is_openapi_3_with_every_resource(db):
    response = Client().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in [
        "/api/v1/pods/",
        "/api/v1/pods/{public_id}/stop/",
        "/api/v1/gpu-types/",
        "/api/v1/data-centers/",
        "/api/v1/templates/",
        "/api/v1/network-volumes/{public_id}/",
        "/api/v1/billing/balance/",
        "/api/v1/billing/ledger/",
        "/api/v1/ssh-keys/",
        "/api/v1/registry-credentials/{public_id}/",
        "/api/v1/members/{public_id}/",
        "/api/v1/invites/",
    ]:
        assert path in paths, path
    assert all(path.startswith("/api/v1/") for path in paths)
    create = schema["paths"]["/api/v1/pods/"]["post"]
    assert "PodCreate" in str(create["requestBody"])


def test_the_schema_keeps_registry_passwords_and_invite_links_write_once(db):
    schema = Client().get("/api/v1/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    assert "password" not in components["RegistryCredential"]["properties"]
    assert "password" in components["RegistryCredentialCreate"]["required"]
    assert "link" not in components["Invite"]["properties"]
    assert "link" in components["InviteCreated"]["properties"]
    invites = schema["paths"]["/api/v1/invites/"]
    assert "InviteCreated" in str(invites["post"]["responses"]["201"])
    assert {p["name"] for p in invites["get"]["parameters"]} >= {"role", "limit", "offset"}


def test_the_docs_page_has_no_inline_script(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attributes for attributes in scripts)
    assert 'data-schema-url="/api/v1/schema/"' in html
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert "unsafe" not in policy["script-src"] and policy["style-src"] == "'self'"
    for path in ["vendor/swagger-ui/swagger-ui-bundle.js", "js/api-docs.js"]:
        assert finders.find(path), path
