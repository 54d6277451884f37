"""Serve the browser target's static site (``<artifacts>/web/``, made by ``pipeline.web``) on this machine.

    python -m pipeline.serve [--port 8000] [--dir SITE]     # make serve [PORT=8000]

Listens on 127.0.0.1 only. Any static file host serves the site as well: it needs only the right
MIME types for ``.mjs`` (JavaScript) and ``.wasm`` (``application/wasm``, for streaming compilation),
which this server sets, and it sends the ``.gz`` copy of a file with ``Content-Encoding: gzip`` to
clients that accept it. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import errno
import functools
import http.server
import os
import sys
from pathlib import Path
from typing import ClassVar

from pipeline import config as config_mod

HOST = "127.0.0.1"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".json": "application/json",
}


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the site's MIME types; the precompressed ``.gz`` copy when the client accepts gzip."""

    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def send_head(self):
        path = Path(self.translate_path(self.path))
        packed = path.with_name(path.name + ".gz")
        if not path.is_file() or not packed.is_file() or not self._accepts_gzip():
            return super().send_head()
        try:
            file = packed.open("rb")
        except OSError:
            return super().send_head()
        stat = os.fstat(file.fileno())
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(stat.st_size))
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.end_headers()
        return file

    def _accepts_gzip(self) -> bool:
        codings = self.headers.get("Accept-Encoding", "")
        return any(
            c.split(";")[0].strip().lower() == "gzip" for c in codings.split(",") if "q=0" not in c.replace(" ", "")
        )

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # revalidate: a rebuilt site shows at once
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write(f"[serve] {self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default 8000; 0: any free one)")
    parser.add_argument("--dir", type=Path, help="the site (default: <artifacts>/web of the config)")
    args = parser.parse_args(argv)
    site = args.dir or config_mod.load().artifacts / "web"
    if not (site / "index.html").is_file():
        print(f"[serve] error: no site in {site}: build it with `make web` (needs npm)", file=sys.stderr)
        sys.exit(1)
    handler = functools.partial(Handler, directory=str(site))
    try:
        server = http.server.ThreadingHTTPServer((HOST, args.port), handler)
    except OSError as e:
        taken = e.errno == errno.EADDRINUSE
        problem = f"port {args.port} is already in use: pick another with PORT=..." if taken else e.strerror
        print(f"[serve] error: cannot listen on {HOST}:{args.port}: {problem}", file=sys.stderr)
        sys.exit(1)
    port = server.server_address[1]
    try:
        print(f"[serve] http://{HOST}:{port}/ serves {site} (any static file host works too); Ctrl-C stops", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("[serve] stopped")
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
