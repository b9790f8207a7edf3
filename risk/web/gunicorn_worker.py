"""gunicorn's sync worker, answering its own 414 and 431 refusals in the API's error shape (JSON)
instead of gunicorn's HTML page. `presign serve` runs the API with it."""

from __future__ import annotations

from typing import Any

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.sync import SyncWorker

from risk.web.security import error_answer

# gunicorn's own limits (`presign serve` passes them): its request-line cap is just under 8 KiB, and
# single headers may be as long as the whole header block the API accepts.
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELD_SIZE = 32 * 1024
LIMIT_REQUEST_FIELDS = 100


class JsonErrorWorker(SyncWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, LimitRequestLine):
            answer = error_answer(414, "uri_too_long", "the request line is over 8 KiB")
        elif isinstance(exc, LimitRequestHeaders):
            answer = error_answer(431, "headers_too_large", "the request headers are too large or too many")
        else:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("refused a request from %s: %s", (addr or ("",))[0], exc)
        status, headers, body = answer
        head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        try:
            util.write_nonblock(client, f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body)
        except OSError:
            self.log.debug("failed to send the refusal")
