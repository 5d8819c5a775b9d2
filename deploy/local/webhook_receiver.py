#!/usr/bin/env python3
"""A tiny Alertmanager webhook receiver: logs every POST body, answers 200.

Used by deploy/local/run-stack.sh (and usable anywhere a throwaway
webhook target is handy). Each notification is printed as one line
(the receiver, status, and for every alert its name, status and labels),
then one `summary:` line per alert, then the raw JSON body with --raw.

    python3 webhook_receiver.py --listen 127.0.0.1 --port 19094
"""

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RAW = False


class Handler(BaseHTTPRequestHandler):
    server_version = "webhook_receiver/1"

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server naming)
        self._reply(200, b"webhook receiver: POST Alertmanager notifications here\n")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            doc = json.loads(body)
            alerts = ", ".join(
                "{}[{}]{{{}}}".format(
                    a.get("labels", {}).get("alertname", "?"),
                    a.get("status", "?"),
                    ",".join(
                        f"{k}={v}"
                        for k, v in sorted(a.get("labels", {}).items())
                        if k != "alertname"
                    ),
                )
                for a in doc.get("alerts", [])
            )
            print(
                f"{stamp} {self.path} receiver={doc.get('receiver')} "
                f"status={doc.get('status')} alerts: {alerts}",
                flush=True,
            )
            for a in doc.get("alerts", []):
                summary = " ".join(a.get("annotations", {}).get("summary", "").split())
                if summary:
                    print(f"    summary: {summary}", flush=True)
        except ValueError:
            print(f"{stamp} {self.path} non-JSON body ({len(body)} bytes)", flush=True)
        if RAW:
            print(body.decode("utf-8", "replace"), flush=True)
        self._reply(200, b"ok\n")

    def log_message(self, fmt, *args):  # keep stdout for the notifications
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main() -> None:
    global RAW
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=19094, help="port (default 19094)")
    parser.add_argument("--raw", action="store_true", help="also print the raw JSON body")
    args = parser.parse_args()
    RAW = args.raw
    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    print(f"webhook receiver listening on {args.listen}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
