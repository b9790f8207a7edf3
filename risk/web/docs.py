"""A browsable API reference rendered on the server from the OpenAPI document.

Works with no internet: no scripts, fonts or styles from elsewhere, only this page and its spec.
"""

from __future__ import annotations

from typing import Any

from flask import render_template_string
from markupsafe import Markup, escape

_METHODS = ("get", "post", "put", "patch", "delete")
_CONSTRAINTS = ("format", "minimum", "maximum", "minLength", "maxLength", "maxItems", "pattern", "default", "example")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ info.title }} API {{ info.version }}</title>
<style>
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
  margin:0;color:#1d2433}
header{background:#1d2433;color:#fff;padding:1rem 2rem}
header a{color:#9cc3ff}
main{display:grid;grid-template-columns:17rem 1fr;gap:2rem;padding:1rem 2rem}
nav{position:sticky;top:1rem;align-self:start;font-size:14px}
nav ul{list-style:none;padding-left:0}
nav a{text-decoration:none;color:#24508f}
section.op{border:1px solid #d7dce5;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#1a7f37}.post{color:#0969da}.patch{color:#9a6700}.put{color:#8250df}.delete{color:#cf222e}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #e5e8ee;text-align:left;padding:.25rem .5rem;vertical-align:top}
code{background:#f2f4f8;padding:0 .2rem;border-radius:3px}
.req{color:#cf222e;font-size:12px}.muted{color:#5b6475}
</style></head><body>
<header><h1>{{ info.title }} API <small>{{ info.version }}</small></h1>
<p>{{ info.description }}</p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI {{ openapi }})</p></header>
<main><nav><h3>Endpoints</h3><ul>
{% for op in operations %}<li><a href="#{{ op.anchor }}">
<span class="m {{ op.method }}">{{ op.method }}</span>{{ op.path }}</a></li>{% endfor %}
</ul><h3>Schemas</h3><ul>
{% for s in schemas %}<li><a href="#schema-{{ s.name }}">{{ s.name }}</a></li>{% endfor %}
</ul></nav>
<div>
<h2>Authentication</h2>
{% for name, scheme in security %}
<p><code>{{ name }}</code>: {{ scheme.type }} {{ scheme.scheme }}. {{ scheme.description }}</p>
{% endfor %}
<h2>Errors</h2>
<p>Every 4xx/5xx answer has the body
<code>{"error": {"code": ..., "message": ..., "fields": {...}}}</code>;
<code>fields</code> maps a field path such as <code>seller.id_number</code> to its messages.</p>
<h2>Endpoints</h2>
{% for op in operations %}<section class="op" id="{{ op.anchor }}">
<h3><span class="m {{ op.method }}">{{ op.method }}</span><code>{{ op.path }}</code></h3>
<p>{{ op.summary }}</p>{% if op.description %}<p class="muted">{{ op.description }}</p>{% endif %}
{% if op.secured %}<p class="muted">Needs <code>Authorization: Bearer &lt;key&gt;</code>.</p>{% endif %}
{% if op.parameters %}<h4>Parameters</h4>
<table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>
{% for p in op.parameters %}<tr>
<td><code>{{ p.name }}</code>{% if p.required %} <span class="req">required</span>{% endif %}</td>
<td>{{ p.where }}</td><td>{{ p.type }}</td><td>{{ p.description }}</td></tr>
{% endfor %}</table>{% endif %}
{% if op.body %}<h4>Request body</h4><p>{{ op.body }}</p>{% endif %}
<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>
{% for r in op.responses %}
<tr><td>{{ r.status }}</td><td>{{ r.description }}</td><td>{{ r.body }}</td></tr>
{% endfor %}</table>
</section>{% endfor %}
<h2>Schemas</h2>
{% for s in schemas %}<section class="op" id="schema-{{ s.name }}"><h3>{{ s.name }}</h3>
{% if s.description %}<p>{{ s.description }}</p>{% endif %}
<table><tr><th>field</th><th>type</th><th>constraints</th><th>description</th></tr>
{% for f in s.fields %}<tr>
<td><code>{{ f.name }}</code>{% if f.required %} <span class="req">required</span>{% endif %}</td>
<td>{{ f.type }}</td><td class="muted">{{ f.constraints }}</td><td>{{ f.description }}</td></tr>
{% endfor %}</table></section>{% endfor %}
</div></main></body></html>"""


def render(spec: dict[str, Any]) -> str:
    """The reference page for an OpenAPI 3 document (as `APISpec.to_dict()` returns it)."""
    components = spec.get("components", {})
    return render_template_string(
        _PAGE,
        info=spec.get("info", {}),
        openapi=spec.get("openapi", ""),
        security=sorted(components.get("securitySchemes", {}).items()),
        operations=_operations(spec, components),
        schemas=[_schema(name, schema) for name, schema in sorted(components.get("schemas", {}).items())],
    )


def _operations(spec: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            parameters = [_parameter(p, components) for p in [*shared, *op.get("parameters", [])]]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            out.append(
                {
                    "anchor": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", ""),
                    "method": method,
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "secured": bool(op.get("security")),
                    "parameters": parameters,
                    "body": _type(body) if body else None,
                    "responses": [
                        _response(status, response, components)
                        for status, response in sorted(op.get("responses", {}).items())
                    ],
                }
            )
    return out


def _resolve(obj: dict[str, Any], components: dict[str, Any], kind: str) -> dict[str, Any]:
    ref = obj.get("$ref", "")
    if ref.startswith(f"#/components/{kind}/"):
        return components.get(kind, {}).get(ref.rsplit("/", 1)[1], {})  # type: ignore[no-any-return]
    return obj


def _parameter(parameter: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    parameter = _resolve(parameter, components, "parameters")
    return {
        "name": parameter.get("name", ""),
        "where": parameter.get("in", ""),
        "required": parameter.get("required", False),
        "type": _type(parameter.get("schema", {})),
        "description": parameter.get("description", ""),
    }


def _response(status: str, response: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    response = _resolve(response, components, "responses")
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    headers = ", ".join(response.get("headers", {}))
    description = response.get("description", "") + (f" (headers: {headers})" if headers else "")
    return {"status": status, "description": description, "body": _type(schema) if schema else ""}


def _schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    required = set(schema.get("required", []))
    fields = []
    for field, prop in schema.get("properties", {}).items():
        constraints = [f"{key}: {prop[key]}" for key in _CONSTRAINTS if key in prop]
        if "enum" in prop:
            constraints.append("one of: " + ", ".join(str(v) for v in prop["enum"] if v is not None))
        if prop.get("nullable"):
            constraints.append("nullable")
        if prop.get("readOnly"):
            constraints.append("read only")
        fields.append(
            {
                "name": field,
                "required": field in required,
                "type": _type(prop),
                "constraints": "; ".join(constraints),
                "description": prop.get("description", ""),
            }
        )
    return {"name": name, "description": schema.get("description", ""), "fields": fields}


def _type(schema: dict[str, Any] | None) -> Markup:
    """A short type label, schema references linked to their section."""
    if not schema:
        return Markup("any")
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[1]
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    for combinator in ("allOf", "oneOf", "anyOf"):
        if combinator in schema:
            return Markup(" | ").join(_type(s) for s in schema[combinator])
    kind = schema.get("type", "any")
    if kind == "array":
        return Markup("array of ") + _type(schema.get("items"))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return Markup("map of ") + _type(schema["additionalProperties"])
    return escape(kind if not isinstance(kind, list) else " | ".join(kind))
