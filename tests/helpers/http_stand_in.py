"""What the HTTP stand-ins for services that cannot run here (ksqlDB, Metabase) share.

`JsonHandler` answers a status and a JSON body and keeps the test output quiet; `Served` runs a
server on a thread of its own and stops it (idempotently, so a test may stop it early to see the
service down).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    content_type = "application/json"

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", self.content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


class Served:
    """`server` serving on a daemon thread from construction until `stop()` (or the `with` block's end)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()
