"""A hello-world JSON endpoint, served by the same gunicorn settings as the API: the gate's limit.

python -m gunicorn ... 'risk.bench.hello:create_app()'
"""

from __future__ import annotations

from flask import Flask, Response, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/api/v1/gate", methods=["GET", "POST"])
    def hello() -> Response:
        return jsonify({"hello": "world"})

    return app
