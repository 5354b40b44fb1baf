"""`dogbreeds local serve`: a model behind SageMaker's HTTP contract, on this machine.

A request goes the way it goes on a SageMaker endpoint with the PyTorch inference container: this
module plays SageMaker's front end (``GET /ping``, ``POST /invocations``, body limits, the
InvokeEndpoint headers, data capture in SageMaker's JSONL layout), and ``inference_worker`` plays the
container: TorchServe's Python worker with the inference toolkit's handler service, which finds the
artifact's ``code/inference.py`` through the model package's container environment, as AWS does.

What is served is a registered version (``--version``: its ModelDataUrl from local S3 and the
Environment of its InferenceSpecification) or a model folder / ``model.tar.gz`` (``--model``: the
environment the training pipeline registers, plus ``--env`` overrides).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dogbreeds import inference_worker
from dogbreeds.local_registry import DEFAULT_WORKDIR, LocalModelRegistry, RegistryError
from pipeline_code.container.dogbreeds_jobs.monitoring import capture_format
from pipeline_code.locations import SERVING_ENVIRONMENT

LOG = logging.getLogger("dogbreeds.local_serve")

INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"
EVENT_ID_HEADER = "X-Dogbreeds-Event-Id"  # local only: SageMaker does not return the eventId
# Bodies above this are refused before being read (the handler's own limit is the real one).
MAX_BODY_BYTES = 6 * 1024 * 1024 + 64 * 1024
MAX_DRAIN_BYTES = 64 * 1024 * 1024
MAX_INFERENCE_ID_LENGTH = 64  # InvokeEndpoint's InferenceId limit
# Headers this server sets itself on every answer.
OWN_HEADERS = ("content-length", "connection", "transfer-encoding")
# Limits of this front end against clients that dawdle or crowd in (not SageMaker's contract).
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a whole request head: request line and headers
DEFAULT_MAX_CONNECTIONS = 64  # connections served at once; more are answered 503
REFUSAL_LINGER_SECONDS = 0.5  # how long a refused connection is waited on for its request


def _canned_answer(status_line: str, body: str, *extra_headers: str) -> bytes:
    """A whole answer that closes the connection, for when no request was (fully) read."""
    data = body.encode("utf-8")
    head = [
        f"HTTP/1.1 {status_line}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(data)}",
        *extra_headers,
        "Connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + data


REQUEST_TIMEOUT_ANSWER = _canned_answer(
    "408 Request Timeout", "the request head did not arrive in time"
)
REFUSAL_ANSWER = _canned_answer(
    "503 Service Unavailable", "too many connections at once; try again shortly", "Retry-After: 1"
)

# The container environment the training pipeline registers with every model version (the SDK's
# PyTorchModel with entry_point inference.py; SAGEMAKER_REGION is left out: nothing reads it
# locally). The inference toolkit reads SAGEMAKER_PROGRAM; SAGEMAKER_SUBMIT_DIRECTORY is read by
# neither sagemaker-inference nor sagemaker-pytorch-inference (the code folder is always
# <model dir>/code), so it is passed on unchanged.
TRAINING_PIPELINE_ENVIRONMENT: dict[str, str] = {
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",  # the sagemaker SDK adds it to every framework model
    **SERVING_ENVIRONMENT,
}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class ServedModel:
    """What `local serve` was asked to serve, resolved to a local path and a container environment."""

    label: str  # "group version N" or the --model path, for messages
    model_data: str  # the package's ModelDataUrl, or the --model path
    local_path: Path
    environment: dict[str, str]
    image_uri: str | None
    package: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)



@dataclass(frozen=True)
class ServeOptions:
    """What `local serve` was asked: exactly one of ``version`` and ``model``, and how to serve it."""

    version: int | None = None  # a version of the local model registry
    model: str | None = None  # a model folder or model.tar.gz
    group: str | None = None  # with version: the model package group
    workdir: str | Path = DEFAULT_WORKDIR  # with version: local mode's working folder
    env_overrides: tuple[str, ...] = ()  # with model: NAME=VALUE container environment overrides
    port: int = 8080  # 0 picks a free port
    host: str = "127.0.0.1"
    capture_dir: Path | None = None
    capture_percent: float = 100.0
    endpoint_name: str = "dogbreeds-local"
    variant_name: str = "AllTraffic"
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    verbose: bool = False  # log every request

class ServeSettings:
    """What one server needs: the loaded worker and the capture configuration."""

    def __init__(
        self,
        worker: inference_worker.InferenceWorker,
        *,
        capture: capture_format.CaptureWriter | None,
        capture_percent: float,
        variant_name: str,
    ) -> None:
        self.worker = worker
        self.capture = capture
        self.capture_percent = capture_percent
        self.variant_name = variant_name
        self.random = random.Random()
        self.random_lock = threading.Lock()

    def should_capture(self) -> bool:
        if self.capture is None or self.capture_percent <= 0:
            return False
        with self.random_lock:
            return self.random.random() * 100.0 < self.capture_percent


class _HeadDeadlineReader(io.RawIOBase):
    """The connection's socket as a raw stream whose reads give up at a deadline while a request
    head is being read, however steadily its bytes trickle in; otherwise each read may wait
    ``idle_timeout`` seconds."""

    def __init__(self, sock: socket.socket, idle_timeout: float | None) -> None:
        self._sock = sock
        self._idle_timeout = idle_timeout
        self._deadline: float | None = None
        self.expired = False
        self.head_bytes = 0

    def readable(self) -> bool:
        return True

    def start_head(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self.expired = False
        self.head_bytes = 0

    def end_head(self) -> None:
        self._deadline = None
        self._sock.settimeout(self._idle_timeout)

    def readinto(self, buffer: Any) -> int:
        timeout = self._idle_timeout
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self.expired = True
                raise TimeoutError("the request head did not arrive in time")
            timeout = remaining if timeout is None else min(timeout, remaining)
        self._sock.settimeout(timeout)
        try:
            received = self._sock.recv_into(buffer)
        except TimeoutError:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.expired = True
            raise
        if self._deadline is not None:
            self.head_bytes += received
        return received


class InvocationHandler(BaseHTTPRequestHandler):
    """One connection; ``server.settings`` holds the shared worker."""

    server_version = "dogbreeds-local-serve"
    timeout = 60  # seconds a silent client may hold a thread (a short body must not hang it)
    protocol_version = "HTTP/1.1"

    @property
    def settings(self) -> ServeSettings:
        return self.server.settings  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        LOG.info("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        super().setup()
        # Every read goes through the deadline reader; the stdlib's socket file is let go.
        self.rfile.close()
        self._reader = _HeadDeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request, whose head (request line and headers) must arrive within the server's
        header timeout of the server starting to wait for it; a client that sent part of it by
        then gets 408, a silent one is closed."""
        seconds = self.server.header_timeout  # type: ignore[attr-defined]
        self._reader.start_head(seconds)
        try:
            super().handle_one_request()  # the stdlib closes the connection on a timeout
        finally:
            self._reader.end_head()
        if not self._reader.expired:
            return
        self.close_connection = True
        if self._reader.head_bytes:
            LOG.warning(
                "%s sent %d bytes but not a whole request head in %g s; answered 408",
                self.address_string(), self._reader.head_bytes, seconds,
            )  # fmt: skip
            with contextlib.suppress(OSError):
                self.wfile.write(REQUEST_TIMEOUT_ANSWER)
        else:
            LOG.info("%s sent nothing in %g s; closed", self.address_string(), seconds)

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self._reader.end_head()
        return ok

    def _send(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
        reason: str | None = None,
    ) -> None:
        self.send_response(status, _status_line_phrase(status, reason))
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_text(self, status: int, message: str) -> None:
        """An answer of this front end itself (not of the model container)."""
        self._send(
            status, message.encode("utf-8"), [("Content-Type", "text/plain; charset=utf-8")]
        )

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.split("?", 1)[0] == "/ping":
            # The server listens only once the model has loaded, so it is always healthy.
            self._send(200, b"", [("Content-Type", "text/plain")])
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
        inference_id = self.headers.get(INFERENCE_ID_HEADER) or None
        if inference_id is not None and not 1 <= len(inference_id) <= MAX_INFERENCE_ID_LENGTH:
            self._send_text(
                400, f"{INFERENCE_ID_HEADER} must be 1 to {MAX_INFERENCE_ID_LENGTH} characters"
            )
            return
        answer = self.settings.worker.invoke(body, list(self.headers.items()))
        # SageMaker generates an eventId per invocation; it is returned here so a local client
        # that sent no inference id can still join ground truth to the captured record.
        event_id = str(uuid.uuid4())
        if answer.status == 200 and self.settings.should_capture():
            record = capture_format.build_record(
                event_id=event_id,
                request_body=body,
                request_content_type=self.headers.get("Content-Type"),
                response_body=answer.body,
                response_content_type=answer.content_type,
                inference_id=inference_id,
                inference_time=datetime.now(UTC),
            )
            try:
                self.settings.capture.write(record)  # type: ignore[union-attr]
            except OSError as error:  # a full disk must not fail the prediction
                LOG.error("could not write capture record: %s", error)
        headers = [(n, v) for n, v in answer.headers if n.lower() not in OWN_HEADERS]
        headers += [(VARIANT_HEADER, self.settings.variant_name), (EVENT_ID_HEADER, event_id)]
        self._send(answer.status, answer.body, headers, answer.reason)

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


def _status_line_phrase(status: int, reason: str | None) -> str:
    """The handler's reason phrase (Netty writes it as ASCII), else the standard one."""
    if reason:
        return reason.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class LocalEndpointServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the shared ``ServeSettings``.

    It serves at most ``max_connections`` connections at once (a thread each); one more is
    answered 503 and closed. A client that vanishes before its answer is one log line.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        settings: ServeSettings,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if not header_timeout > 0:
            raise ValueError(f"the header timeout must be above 0 seconds, got {header_timeout}")
        if max_connections < 1:
            raise ValueError(f"at least 1 connection must be allowed, got {max_connections}")
        super().__init__(address, InvocationHandler)
        self.settings = settings
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        # Refused connections are answered on short-lived threads, at most this many at once.
        self._refusals = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # broken pipe, reset, aborted: the client left
            LOG.warning(
                "%s: connection lost: %s: %s", client_address[0], type(error).__name__, error
            )
            return
        super().handle_error(request, client_address)

    def _refuse(self, request: socket.socket, client_address: Any) -> None:
        LOG.warning(
            "%s: refused with 503: %d connections are being served (--max-connections)",
            client_address[0], self.max_connections,
        )  # fmt: skip
        if not self._refusals.acquire(blocking=False):
            self.shutdown_request(request)  # refusing too many already: just close
            return
        try:
            threading.Thread(
                target=self._answer_refused, args=(request,), name="local-serve-refuse",
                daemon=True,
            ).start()  # fmt: skip
        except BaseException:
            self._refusals.release()
            self.shutdown_request(request)
            raise

    def _answer_refused(self, request: socket.socket) -> None:
        """503, then wait briefly for the client to finish: closing with its request unread
        would reset the connection before it could read the answer."""
        try:
            request.settimeout(REFUSAL_LINGER_SECONDS)
            with contextlib.suppress(TimeoutError):
                request.recv(65536)  # the request, usually already here
            request.sendall(REFUSAL_ANSWER)
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + REFUSAL_LINGER_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                request.settimeout(remaining)
                if not request.recv(65536):
                    break
        except OSError:
            pass
        finally:
            request.close()
            self._refusals.release()


# -- what to serve --------------------------------------------------------------------------------
class ServeError(Exception):
    """`local serve` cannot start; the message is one line for the operator."""


def parse_env_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``--env NAME=VALUE`` (VALUE may be empty) -> {NAME: VALUE}."""
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not ENV_NAME.match(name):
            raise ServeError(f"--env takes NAME=VALUE, got {pair!r}")
        overrides[name] = value
    return overrides


def resolve_model(options: ServeOptions) -> ServedModel:
    """The model path and container environment for --model or --version."""
    if options.model is not None:
        from pipeline_code.locations import INFERENCE_IMAGE_TAG

        environment = {**TRAINING_PIPELINE_ENVIRONMENT, **parse_env_overrides(options.env_overrides)}
        return ServedModel(
            label=str(options.model),
            model_data=str(options.model),
            local_path=Path(options.model),
            environment=environment,
            # The image the local training pipeline registers its versions with.
            image_uri=f"pytorch-inference:{INFERENCE_IMAGE_TAG}",
        )
    if options.env_overrides:
        raise ServeError(
            "--env applies to --model; a registered version is served with the environment it was "
            "registered with, as AWS serves it"
        )
    return resolve_registered_version(Path(options.workdir), options.version, options.group)


def resolve_registered_version(workdir: Path, version: int, group: str | None) -> ServedModel:
    """A version of the local model registry: ModelDataUrl under local S3, its Environment."""
    from dogbreeds.local_executor import local_s3_root
    from dogbreeds.local_executor.s3_mapping import LocalS3, S3MappingError

    try:
        package = LocalModelRegistry(workdir).get(version, group)
    except RegistryError as error:
        raise ServeError(str(error)) from None
    label = f"{package['group']} version {package['version']}"
    containers = (package.get("inference_specification") or {}).get("Containers") or []
    if len(containers) != 1:
        raise ServeError(
            f"{label} has {len(containers)} containers in its InferenceSpecification; local serve "
            "runs exactly one"
        )
    container = containers[0]
    environment = container.get("Environment") or {}
    if not isinstance(environment, Mapping) or not all(
        isinstance(value, str) for value in environment.values()
    ):
        raise ServeError(f"{label}: its container Environment must map names to strings")
    model_data = container.get("ModelDataUrl") or package.get("model_data_url") or ""
    try:
        local_path = LocalS3(local_s3_root(workdir)).path_for(model_data)
    except S3MappingError as error:
        raise ServeError(f"{label}: ModelDataUrl: {error}") from None
    if not local_path.exists():
        raise ServeError(f"{label}: its model data {model_data} is not in local S3 ({local_path})")
    notes = []
    if package.get("approval_status") != "Approved":
        notes.append(
            f"{label} is {package.get('approval_status')}; AWS deploys only approved versions"
        )
    return ServedModel(
        label=label,
        model_data=model_data,
        local_path=local_path,
        environment=dict(environment),
        image_uri=container.get("Image"),
        package=package,
        notes=notes,
    )


def guard_imports(image_uri: str | None, code_dir: Path) -> None:
    """Let the artifact's code import only what the serving image holds, as on the endpoint.

    Runs after the process has the package's environment and the worker's ``sys.path`` and before
    the toolkit imports the artifact's code. ``image_uri`` is the package container's Image (for
    ``--model``: the image the training pipeline registers).
    """
    from dogbreeds.local_executor.import_guard import UnknownImageError, install_import_guard

    if not image_uri:
        raise inference_worker.ModelLoadError(
            "the model package names no container image, so what its code may import is unknown"
        )
    try:
        install_import_guard(image_uri, code_dir)
    except UnknownImageError as error:
        raise inference_worker.ModelLoadError(str(error)) from None


def load_worker(served: ServedModel, model_dir: Path) -> tuple[inference_worker.InferenceWorker, list[str]]:
    """Prepare this process as the endpoint's worker and load the model; returns (worker, dropped)."""
    dropped = inference_worker.prepare_process(model_dir, served.environment)
    guard_imports(served.image_uri, model_dir / "code")
    return inference_worker.InferenceWorker.load(model_dir), dropped


# -- the command ----------------------------------------------------------------------------------
def serve(options: ServeOptions) -> int:
    """Load the model, serve until SIGINT/SIGTERM, then close sockets and capture files."""
    logging.basicConfig(level=logging.INFO if options.verbose else logging.WARNING)
    if not 0 <= options.capture_percent <= 100:
        print(f"--capture-percent must be between 0 and 100, got {options.capture_percent}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not options.header_timeout > 0 or options.max_connections < 1:
        print("--header-timeout must be above 0 and --max-connections at least 1", file=sys.stderr)
        return 2
    try:
        served = resolve_model(options)
    except ServeError as error:
        print(f"cannot serve: {error}", file=sys.stderr)
        return 2
    for note in served.notes:
        print(f"note: {note}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="dogbreeds-model-") as scratch:
        capture = None
        if options.capture_dir is not None:
            try:
                capture = capture_format.CaptureWriter(
                    Path(options.capture_dir), options.endpoint_name, options.variant_name
                )
            except ValueError as error:
                print(f"bad capture settings: {error}", file=sys.stderr)
                return 2
        try:
            model_dir = inference_worker.unpack_model_data(served.local_path, Path(scratch))
            worker, dropped = load_worker(served, model_dir)
        except inference_worker.ModelLoadError as error:
            print(f"cannot serve {served.label}: {error}", file=sys.stderr)
            if capture is not None:
                capture.close()
            return 2
        settings = ServeSettings(
            worker,
            capture=capture,
            capture_percent=options.capture_percent,
            variant_name=options.variant_name,
        )
        try:
            server = LocalEndpointServer(
                (options.host, options.port), settings,
                header_timeout=options.header_timeout, max_connections=options.max_connections,
            )  # fmt: skip
        except OSError as error:
            print(f"cannot listen on {options.host}:{options.port}: {error}", file=sys.stderr)
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
        package = served.package
        handler_code = inference_worker.user_module_file()
        print(
            json.dumps(
                {
                    "url": f"http://{host}:{port}",
                    "model_version": getattr(worker.model, "version", None),
                    "model_package": (
                        {key: package[key] for key in ("group", "version", "arn", "approval_status")}
                        if package
                        else None
                    ),
                    "model_data": served.model_data,
                    "environment": served.environment,
                    "handler_code": handler_code,
                    "endpoint_name": options.endpoint_name,
                    "capture_dir": str(options.capture_dir) if options.capture_dir else None,
                }
            ),
            flush=True,
        )
        shown_env = " ".join(f"{k}={v}" for k, v in sorted(served.environment.items())) or "(none)"
        print(f"Serving {served.label} at http://{host}:{port}/invocations (Ctrl-C stops)")
        print(f"  model data:  {served.model_data}")
        print(f"  environment: {shown_env}")
        print(f"  handler:     {handler_code or 'the toolkit default handlers'}")
        if dropped:
            print(f"  not passed on from this shell: {', '.join(dropped)}")
        sys.stdout.flush()
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
