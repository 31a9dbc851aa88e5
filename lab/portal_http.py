"""The emulator's HTTP side: a request handler that hands every request to the portal and
writes its answer (whole, trickled or endless), and a server that can cut keep-alive
connections when the portal is stopped (killed)."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from lab.portal_contract import Answer

if TYPE_CHECKING:
    from lab.portal_emulator import PortalEmulator

log = logging.getLogger(__name__)

ENDLESS_CHUNK = b'{"id": "REQ-ENDLESS", "phone": "+375291234567"}, ' * 1000


class Handler(BaseHTTPRequestHandler):
    """Subclassed per emulator with ``portal`` set (see PortalEmulator.start)."""

    portal: PortalEmulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK hold every keep-alive answer ~40 ms.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.portal.stopping.is_set():  # killed: a keep-alive request gets no answer
            self.close_connection = True
            return
        answer = self.portal.handle(self.command, self.path, headers, body)
        if self.portal.stopping.is_set():  # killed while handling it: done or not, unanswered
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if answer.endless:
            self.send_header("Connection", "close")  # the body ends when the connection does
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        try:
            self._write_body(answer)
        except OSError:  # the client hung up: what a hostile answer waits for
            self.close_connection = True

    def _write_body(self, answer: Answer) -> None:
        stopping = self.portal.stopping
        if answer.trickle_s:
            self.wfile.flush()
            for i in range(len(answer.body)):
                if stopping.wait(answer.trickle_s):
                    break
                self.wfile.write(answer.body[i : i + 1])
                self.wfile.flush()
        elif answer.endless:
            self.wfile.write(answer.body)
            while not stopping.is_set():
                self.wfile.write(ENDLESS_CHUNK)
                self.portal.endless_bytes_sent += len(ENDLESS_CHUNK)
        else:
            self.wfile.write(answer.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("portal emulator: %s", format % args)


class Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can cut keep-alive ones; quiet about broken pipes."""

    def __init__(self, address: tuple[str, int], handler: type[Handler]) -> None:
        super().__init__(address, handler)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("portal emulator: connection from %s failed", client_address, exc_info=True)
