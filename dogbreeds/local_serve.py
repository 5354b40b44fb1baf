"""`dogbreeds local serve`: a model artifact behind SageMaker's HTTP contract, on this machine.

``GET /ping`` and ``POST /invocations`` as a SageMaker endpoint container answers them, with the
handler code from the artifact's own ``code/inference.py`` (a model directory or ``model.tar.gz``,
unpacked the way SageMaker unpacks it), and data capture in SageMaker's JSONL layout so the
monitors read local traffic exactly as they read an endpoint's. The standard library's threading
HTTP server is enough here: the model is read-only at inference time, so threads share it, and a
semaphore bounds how many requests run the network at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline_code.container import capture_format, serving_handlers

LOG = logging.getLogger("dogbreeds.local_serve")

INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"
EVENT_ID_HEADER = "X-Dogbreeds-Event-Id"  # local only: SageMaker does not return the eventId
# Bodies above this are refused before being read (the handler's own limit is the real one).
MAX_BODY_BYTES = 6 * 1024 * 1024 + 64 * 1024
MAX_DRAIN_BYTES = 64 * 1024 * 1024
MAX_INFERENCE_ID_LENGTH = 64  # InvokeEndpoint's InferenceId limit


class ServeSettings:
    """What one server needs: the loaded handlers and the capture configuration."""

    def __init__(
        self,
        service: serving_handlers.HandlerService,
        *,
        capture: capture_format.CaptureWriter | None,
        capture_percent: float,
        variant_name: str,
        max_concurrent: int,
    ) -> None:
        self.service = service
        self.capture = capture
        self.capture_percent = capture_percent
        self.variant_name = variant_name
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.random = random.Random()
        self.random_lock = threading.Lock()

    def should_capture(self) -> bool:
        if self.capture is None or self.capture_percent <= 0:
            return False
        with self.random_lock:
            return self.random.random() * 100.0 < self.capture_percent


class InvocationHandler(BaseHTTPRequestHandler):
    """One connection; ``server.settings`` holds the shared model."""

    server_version = "dogbreeds-local-serve"
    timeout = 60  # seconds a silent client may hold a thread (a short body must not hang it)
    protocol_version = "HTTP/1.1"

    @property
    def settings(self) -> ServeSettings:
        return self.server.settings  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        LOG.info("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_text(self, status: int, message: str) -> None:
        self._send(status, message.encode("utf-8"), "text/plain; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.split("?", 1)[0] == "/ping":
            self._send(200, b"", "text/plain")
        else:
            self._send_text(404, f"no route {self.path}; use GET /ping or POST /invocations")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        if self.path.split("?", 1)[0] != "/invocations":
            self.close_connection = True
            self._send_text(404, f"no route {self.path}; use GET /ping or POST /invocations")
            return
        body = self._read_body()
        if body is None:
            return
        content_type = self.headers.get("Content-Type")
        accept = self.headers.get("Accept")
        inference_id = self.headers.get(INFERENCE_ID_HEADER) or None
        if inference_id is not None and not 1 <= len(inference_id) <= MAX_INFERENCE_ID_LENGTH:
            self._send_text(
                400, f"{INFERENCE_ID_HEADER} must be 1 to {MAX_INFERENCE_ID_LENGTH} characters"
            )
            return
        with self.settings.slots:
            result = self.settings.service.invoke(body, content_type, accept)
        # SageMaker generates an eventId per invocation; it is returned here so a local client
        # that sent no inference id can still join ground truth to the captured record.
        event_id = str(uuid.uuid4())
        extra = {VARIANT_HEADER: self.settings.variant_name, EVENT_ID_HEADER: event_id}
        if result.status == 200 and self.settings.should_capture():
            record = capture_format.build_record(
                event_id=event_id,
                request_body=body,
                request_content_type=content_type,
                response_body=result.body,
                response_content_type=result.content_type,
                inference_id=inference_id,
                inference_time=datetime.now(UTC),
            )
            try:
                self.settings.capture.write(record)  # type: ignore[union-attr]
            except OSError as error:  # a full disk must not fail the prediction
                LOG.error("could not write capture record: %s", error)
        self._send(result.status, result.body, result.content_type, extra)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413/400 (and closing the connection)."""
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_header is None:
            self.close_connection = True
            self._send_text(411, "send the body with a Content-Length header")
            return None
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError(length_header)
        except ValueError:
            self.close_connection = True
            self._send_text(400, f"bad Content-Length {length_header!r}")
            return None
        if length > MAX_BODY_BYTES:
            # Drain a moderately oversized body so the client can read the 413 instead of seeing
            # a reset; beyond that, stop reading and close.
            self.close_connection = True
            if length <= MAX_DRAIN_BYTES:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self._send_text(
                413, f"payload of {length} bytes is over the limit of {MAX_BODY_BYTES} bytes"
            )
            return None
        return self.rfile.read(length)


class LocalEndpointServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the shared ``ServeSettings``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], settings: ServeSettings) -> None:
        super().__init__(address, InvocationHandler)
        self.settings = settings


def serve(args: argparse.Namespace) -> int:
    """Load the model, serve until SIGINT/SIGTERM, then close sockets and capture files."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if not 0 <= args.capture_percent <= 100:
        print(f"--capture-percent must be between 0 and 100, got {args.capture_percent}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.max_concurrent < 1:
        print(f"--max-concurrent must be at least 1, got {args.max_concurrent}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dogbreeds-model-") as scratch:
        try:
            model_dir = serving_handlers.resolve_model_dir(Path(args.model), Path(scratch))
            service = serving_handlers.HandlerService(model_dir)
        except (serving_handlers.ModelLoadError, FileNotFoundError, ValueError) as error:
            print(f"cannot serve {args.model}: {error}", file=sys.stderr)
            return 2
        capture = None
        if args.capture_dir is not None:
            try:
                capture = capture_format.CaptureWriter(
                    Path(args.capture_dir), args.endpoint_name, args.variant_name
                )
            except ValueError as error:
                print(f"bad capture settings: {error}", file=sys.stderr)
                return 2
        settings = ServeSettings(
            service,
            capture=capture,
            capture_percent=args.capture_percent,
            variant_name=args.variant_name,
            max_concurrent=args.max_concurrent,
        )
        try:
            server = LocalEndpointServer((args.host, args.port), settings)
        except OSError as error:
            print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
            return 2
        stop = threading.Event()

        def request_stop(signum: int, _frame: object) -> None:
            stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        thread = threading.Thread(target=server.serve_forever, name="local-serve", daemon=True)
        thread.start()
        host, port = server.server_address[:2]
        print(
            json.dumps(
                {
                    "url": f"http://{host}:{port}",
                    "model_version": service.model_version,
                    "endpoint_name": args.endpoint_name,
                    "capture_dir": str(args.capture_dir) if args.capture_dir else None,
                }
            ),
            flush=True,
        )
        print(
            f"Serving {args.model} at http://{host}:{port}/invocations (Ctrl-C stops)", flush=True
        )
        try:
            while not stop.wait(0.5):
                pass
        finally:
            server.shutdown()  # waits for serve_forever to return
            server.server_close()
            thread.join(timeout=10)
            if capture is not None:
                capture.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print("stopped", flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model artifact with SageMaker's /ping and /invocations contract",
        description=(
            "Serve a model directory or model.tar.gz with its own code/inference.py, as a "
            "SageMaker PyTorch endpoint would, optionally writing SageMaker data capture."
        ),
    )
    parser.add_argument("--model", required=True, help="model directory or model.tar.gz")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--capture-dir", type=Path, default=None, help="write data capture here")
    parser.add_argument(
        "--capture-percent", type=float, default=100.0, help="share of requests captured (0-100)"
    )
    parser.add_argument("--endpoint-name", default="dogbreeds-local", help="capture folder name")
    parser.add_argument("--variant-name", default="AllTraffic", help="production variant name")
    parser.add_argument(
        "--max-concurrent", type=int, default=4, help="requests running the model at once"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.set_defaults(func=serve)
