"""The Flask app factory. Nothing connects at import time; settings come in explicitly."""

from __future__ import annotations

from flask import Flask

from risk.runtime import Runtime
from risk.settings import Settings
from risk.web import security
from risk.webapp.views import bp as webapp_blueprint


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    if runtime is None:
        runtime = Runtime.build(settings or Settings.from_env())
    app = Flask(__name__, instance_path=str(runtime.settings.instance))
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_content_length
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["presign"] = runtime

    from risk.api import init_api

    init_api(app)
    app.register_blueprint(webapp_blueprint)
    security.install(app)
    return app
