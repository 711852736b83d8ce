"""A local HTTP server in a background thread: the shared lifecycle of the test doubles
(``saas_bot.testing.telegram_emulator.TelegramEmulator``, ``saas_bot.testing.llm_stub.OpenAIStub``,
``saas_bot.testing.local_site.LocalSite``), and ``FixedTextService``, a server answering every GET with one
text (what a test or probe fetches). No Django here: the doubles also run as stand-alone processes.
"""
from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does not print tracebacks for clients that hung up early
    (timeouts under test are expected; anything else is still reported)."""

    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of clients (load tests, many workers)
    # would see connect timeouts that the real services never cause.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class LocalHTTPService:
    """Start/stop/port/context-manager for a server on ``host:port`` (0 = a free port).

    Subclasses set ``handler_class`` (a BaseHTTPRequestHandler), ``server_attribute`` (the name under
    which the handler finds the service on its server) and ``thread_name``.
    """

    handler_class: type[BaseHTTPRequestHandler]
    server_attribute = "service"
    thread_name = "local-http"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _before_start(self) -> None:
        """Checks that should fail at start rather than inside a request."""

    def start(self):
        """Bind and serve in a daemon thread; returns ``self``. Raises ``OSError`` if the port
        is taken, ``RuntimeError`` if already started."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._before_start()
        server = QuietServer((self.host, self._requested_port), self.handler_class)
        setattr(server, self.server_attribute, self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=self.thread_name,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port. Raises ``RuntimeError`` before :meth:`start`."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])


class _FixedTextHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        service = self.server.service
        service.requests.append({"path": self.path, "headers": dict(self.headers.items())})
        self.send_response(200)
        self.send_header("Content-Type", service.content_type)
        self.send_header("Content-Length", str(len(service.body)))
        self.end_headers()
        self.wfile.write(service.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class FixedTextService(LocalHTTPService):
    """Answers every GET with ``body`` (200, ``content_type``) and records each request in ``requests``
    (``{"path", "headers"}``, in arrival order).

    Usage: ``with FixedTextService(b"Refunds take five days.") as server: ... server.port ...``.
    """

    handler_class = _FixedTextHandler
    thread_name = "fixed-text-http"

    def __init__(self, body: bytes, *, content_type: str = "text/plain", host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host, port)
        self.body, self.content_type = body, content_type
        self.requests: list[dict[str, Any]] = []
