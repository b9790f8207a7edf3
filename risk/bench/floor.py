"""The gate's floor: hello-world plus the two statements every gate answer costs, and nothing else.

The endpoint reads the listing and its newest complete report (the gate's one read, the very SQL the
gate runs), and then records the answer as an unchained `gate.answered` event in `audit_events` before
sending it (the gate's one write).
Both go through a plain DBAPI connection (sqlite3 with Presign's own PRAGMAs, or psycopg with the
driver's defaults). There is no key check, no validation, no freshness rule, no commitments and no
error handling. It runs under the same gunicorn settings as the API and hello-world, against the same
database.

So it bounds any gate that reads the database and keeps each answer before sending it. If the floor
itself stays under a target set against hello-world, the target cannot be met by trimming the gate's
code; only by doing less per answer.

    PRESIGN_DATABASE_URL=... python -m gunicorn ... 'risk.bench.floor:create_app()'

On SQLite the record queues behind the host's other writers as `risk.db.Raw.write` does (the flock
beside the file); SQLite's own busy handler sleeps whole milliseconds, which would understate the
floor.

`PRESIGN_BENCH_FLOOR_RECORD` measures what other ways of keeping the answer would allow (the bench
itself always runs the default): `before` (the default, as the gate does: committed before the answer
is sent), `async` (on PostgreSQL, `synchronous_commit = off`: a crash of the server may lose the last
answers' records) and `none` (no record at all).
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from risk.db import WriterQueue, sqlite_pragmas
from risk.gate.operations import floor_statements

RECORD_MODES = ("before", "async", "none")


def create_app() -> Flask:
    url = make_url(os.environ["PRESIGN_DATABASE_URL"])
    keep = os.environ.get("PRESIGN_BENCH_FLOOR_RECORD", "before")
    if keep not in RECORD_MODES:
        raise ValueError(f"PRESIGN_BENCH_FLOOR_RECORD must be one of {', '.join(RECORD_MODES)}, not {keep!r}")
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
                if keep == "async":
                    connected.execute("SET synchronous_commit = off")
            else:
                connected = sqlite3.connect(str(url.database))
                sqlite_pragmas(connected)  # Presign's own settings, autocommit included
            connections[os.getpid()] = connected
        return connected

    def writers() -> Any:
        return nullcontext() if on_postgres else WriterQueue.held(str(url.database))

    app = Flask(__name__)

    @app.route("/api/v1/gate", methods=["POST"])
    def gate() -> Response:
        asked = request.get_json()
        db = connection()
        cursor = db.execute(read_sql, dict(read_defaults, listing_id=asked["listing_id"], stage=asked["stage"]))
        row = cursor.fetchone()
        cursor.close()
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
        record = {
            "company": company,
            "type": "gate.answered",
            "at": now if on_postgres else now.replace(tzinfo=None).isoformat(" "),
            "actor_client_id": "floor",
            "actor_role": "agent",
            "actor_name": "floor",
            "subject_kind": "listing",
            "subject_id": listing_id,
            "data": sent,
        }
        if keep != "none":
            with writers():
                db.execute(write_sql, record)
        return app.response_class(sent + "\n", mimetype="application/json")

    return app
