"""The OpenAPI document and the offline docs page."""

from __future__ import annotations

import re

import pytest

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
PUBLIC = {"/api/v1/openapi.json", "/api/v1/docs"}


@pytest.fixture
def spec(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _api_operations(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.rule not in PUBLIC:
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            for method in sorted(rule.methods & METHODS):
                yield path, method.lower()


def test_the_spec_is_openapi_3_0_3_for_presign_v1(spec):
    assert spec["openapi"] == "3.0.3"
    assert spec["info"]["title"] == "Presign"
    assert spec["info"]["version"] == "v1"


def test_every_api_endpoint_is_in_the_spec(app, spec):
    operations = list(_api_operations(app))
    assert ("/api/v1/listings", "post") in operations and ("/api/v1/reports/{report_id}", "get") in operations
    for path, method in operations:
        assert method in spec["paths"].get(path, {}), (method, path)


def test_every_operation_requires_the_bearer_scheme(app, spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, method in _api_operations(app):
        assert spec["paths"][path][method]["security"] == [{"bearerAuth": []}], (method, path)


def test_every_operation_documents_401_403_and_503(app, spec):
    for path, method in _api_operations(app):
        assert {"401", "403", "503"} <= set(spec["paths"][path][method]["responses"]), (method, path)


def test_error_responses_document_the_error_shape(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(schemas["ErrorBody"]["properties"]) == {"code", "message", "fields"}
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "fields"}
    for name in ("UNPROCESSABLE_ENTITY", "UNAUTHORIZED", "NOT_FOUND", "CONFLICT", "DEFAULT_ERROR"):
        content = spec["components"]["responses"][name]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}


def test_creating_posts_document_the_idempotency_key(spec):
    for path in ("/api/v1/listings", "/api/v1/listings/{listing_id}/reports"):
        names = [p["name"] for p in spec["paths"][path]["post"]["parameters"]]
        assert "Idempotency-Key" in names


def test_input_and_output_schemas_are_separate(spec):
    schemas = spec["components"]["schemas"]
    assert "id" not in schemas["ListingInput"]["properties"]
    assert "id" in schemas["Listing"]["properties"]
    assert schemas["Listing"]["properties"]["asking_price"]["type"] == "string"


def test_the_docs_page_renders_every_endpoint(app, client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path, _method in _api_operations(app):
        assert path in page
    assert "ListingInput" in page and "seller" in page


def test_the_docs_page_loads_nothing_from_elsewhere(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "@import" not in page and "url(" not in page
