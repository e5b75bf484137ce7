#!/usr/bin/env python3
"""The CloudEvents sink scripts/dashboard-check delivers to (standard library only).

    sink.py [PORT]    # PORT defaults to $PORT (what ferry dev gives a revision's process)

Answers every POST on 127.0.0.1 after SINK_DELAY_MS (default 0): 500 on paths under /fail (a
subscriber that always fails, so events are retried, then dead-lettered or dropped), 202 on
any other path. GET answers 200, so probes and curl see it is up.
"""

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = float(os.environ.get("SINK_DELAY_MS", "0")) / 1000


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if DELAY:
            time.sleep(DELAY)
        self.answer(500 if self.path.startswith("/fail") else 202)

    def do_GET(self):
        self.answer(200)

    def answer(self, code):
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    server.daemon_threads = True
    return server


if __name__ == "__main__":
    serve(int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])).serve_forever()
