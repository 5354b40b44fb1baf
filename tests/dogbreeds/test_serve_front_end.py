"""The local server's own front end with clients that vanish, dawdle or crowd in.

These are properties of the stand-in for SageMaker's front end, not of SageMaker's contract, so a
stand-in worker answers instead of a model: only the HTTP layer is under test.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dogbreeds import inference_worker, local_serve

PING = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"


class StandInWorker:
    """Answers every invocation with a JSON body, after ``release`` is set when ``hold`` is on."""

    def __init__(self, *, hold: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def invoke(self, body: bytes, headers: list[tuple[str, str]]) -> inference_worker.WorkerAnswer:
        self.entered.set()
        self.release.wait(10)
        return inference_worker.WorkerAnswer(
            200, None, [("Content-Type", "application/json")], b'{"predictions": []}'
        )


@contextmanager
def running(worker: StandInWorker, **options: float) -> Iterator[local_serve.LocalEndpointServer]:
    settings = local_serve.ServeSettings(
        worker, capture=None, capture_percent=0, variant_name="AllTraffic"
    )
    server = local_serve.LocalEndpointServer(("127.0.0.1", 0), settings, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def connect(server: local_serve.LocalEndpointServer) -> socket.socket:
    sock = socket.create_connection(server.server_address[:2], timeout=5)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_clients_gone_before_their_answer_are_one_log_line_each_not_a_traceback(
    capfd, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="dogbreeds.local_serve")
    for _ in range(3):
        worker = StandInWorker(hold=True)
        with running(worker) as server:
            client = connect(server)
            client.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: 3\r\n\r\nabc"
            )
            assert worker.entered.wait(5)
            # Close with a reset while the model is still working: the answer has nowhere to go.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            worker.release.set()
            time.sleep(0.3)  # the answer is written and fails before the server shuts down
    _, err = capfd.readouterr()
    assert "Traceback" not in err and "Error" not in err, err
    lost = [r for r in caplog.records if "connection lost" in r.getMessage()]
    assert len(lost) == 3, [r.getMessage() for r in caplog.records]
    assert all("\n" not in r.getMessage() and not r.exc_info for r in lost)
    assert all(
        "BrokenPipeError" in r.getMessage() or "ConnectionResetError" in r.getMessage()
        for r in lost
    )


def test_a_request_head_trickled_byte_by_byte_is_cut_off_at_the_deadline(caplog) -> None:
    caplog.set_level(logging.INFO, logger="dogbreeds.local_serve")
    with running(StandInWorker(), header_timeout=1.0) as server:
        client = connect(server)
        stop = threading.Event()

        def trickle() -> None:
            # Always within the idle timeout, never a whole head.
            for byte in b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"z" * 100:
                if stop.wait(0.2):
                    return
                try:
                    client.send(bytes([byte]))
                except OSError:
                    return

        trickler = threading.Thread(target=trickle)
        started = time.monotonic()
        trickler.start()
        try:
            answer = read_until_closed(client)
        finally:
            stop.set()
            trickler.join()
            client.close()
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert 0.9 <= elapsed < 3, elapsed
        # A client that sends its head at once is served, on the same server.
        prompt = connect(server)
        prompt.sendall(PING.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert read_until_closed(prompt).startswith(b"HTTP/1.1 200 ")
        prompt.close()
    assert any("request head" in r.getMessage() for r in caplog.records)


def test_connections_over_the_cap_get_a_quick_503_and_the_rest_are_still_served() -> None:
    with running(StandInWorker(), max_connections=2, header_timeout=5.0) as server:
        held = [connect(server) for _ in range(2)]  # silent: each holds a server thread
        held[0].sendall(b"GET /pi")  # and one a half-sent head
        time.sleep(0.2)
        extra = connect(server)
        started = time.monotonic()
        extra.sendall(PING)
        answer = read_until_closed(extra)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"Retry-After:" in answer and b"Connection: close" in answer
        assert time.monotonic() - started < 2
        for sock in held:
            sock.close()
        # The slots come back once those clients are gone.
        deadline = time.monotonic() + 5
        while True:
            again = connect(server)
            again.sendall(PING.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            answer = read_until_closed(again)
            again.close()
            if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_front_end_limits_must_be_positive() -> None:
    settings = local_serve.ServeSettings(
        StandInWorker(), capture=None, capture_percent=0, variant_name="AllTraffic"
    )
    with pytest.raises(ValueError, match="header timeout"):
        local_serve.LocalEndpointServer(("127.0.0.1", 0), settings, header_timeout=0)
    with pytest.raises(ValueError, match="connection"):
        local_serve.LocalEndpointServer(("127.0.0.1", 0), settings, max_connections=0)
