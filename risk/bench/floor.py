"""The gate's floor: a plain Flask endpoint that makes the gate's one read and commits one record row,
and nothing else.

The read is the very SQL the gate runs (the listing with its newest complete report); the record is
an unchained `gate.answered` event in `audit_events`, committed before the answer is sent. Both run
on one plain driver connection per process (sqlite3 with Presign's own PRAGMAs, or psycopg with the
driver's defaults): no key check, no validation, no freshness rule, no commitments, no error handling.
It runs under the same gunicorn settings as the API, against the same database, so it bounds any gate
that keeps each answer before sending it.

    PRESIGN_DATABASE_URL=... python -m gunicorn ... 'risk.bench.floor:create_app()'
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from risk.db import sqlite_pragmas
from risk.gate.operations import floor_statements


def create_app() -> Flask:
    url = make_url(os.environ["PRESIGN_DATABASE_URL"])
    on_postgres = url.get_backend_name() == "postgresql"
    if on_postgres:
        import psycopg  # when the worker boots, as an app imports its driver: not in its first answer
    dialect = postgresql.dialect(paramstyle="pyformat") if on_postgres else sqlite.dialect(paramstyle="named")
    read, write = (statement.compile(dialect=dialect) for statement in floor_statements())
    read_sql, write_sql = str(read), str(write)
    read_defaults = read.construct_params({"listing_id": None, "stage": None})  # the statement's literals
    connections: dict[int, Any] = {}  # by process: a connection is never used across a fork (`--preload`)

    def connection() -> Any:
        connected = connections.get(os.getpid())
        if connected is None:
            if on_postgres:
                connected = psycopg.connect(
                    host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database,
                    autocommit=True,
                )  # fmt: skip
            else:
                connected = sqlite3.connect(str(url.database))
                sqlite_pragmas(connected)  # Presign's own settings, autocommit included
            connections[os.getpid()] = connected
        return connected

    app = Flask(__name__)

    @app.route("/api/v1/gate", methods=["POST"])
    def gate() -> Response:
        asked = request.get_json()
        db = connection()
        row = db.execute(read_sql, dict(read_defaults, listing_id=asked["listing_id"], stage=asked["stage"])).fetchone()
        if row is None:
            return app.response_class('{"error":"no such listing"}\n', status=404, mimetype="application/json")
        listing_id, company, _store, report_id, decision, reasons, commitments, completed_at = row[:8]
        body = {
            "decision": decision,
            "stage": asked["stage"],
            "report_id": report_id,
            "reasons": json.loads(reasons) if isinstance(reasons, str) else reasons,
            "commitments": json.loads(commitments) if isinstance(commitments, str) else commitments,
            "fresh_until": str(completed_at),
            "override": None,
            "refresh_report_id": None,
        }
        sent = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        now = datetime.now(UTC)
        db.execute(
            write_sql,
            {
                "company": company,
                "type": "gate.answered",
                "at": now if on_postgres else now.replace(tzinfo=None).isoformat(" "),
                "actor_client_id": "floor",
                "actor_role": "agent",
                "actor_name": "floor",
                "subject_kind": "listing",
                "subject_id": listing_id,
                "data": sent,
            },
        )  # committed on its own: both connections are in autocommit mode
        return app.response_class(sent + "\n", mimetype="application/json")

    return app
