"""A loopback TCP proxy that a test can cut and restore: a database or agency system going away.

Sits between the gateway and a real server (PostgreSQL, a sample agency system) so the
shared server itself is never stopped. ``cut()`` closes the listening socket (new
connections are refused, as when the server is down) and resets every open connection
(as when it crashed); ``restore()`` listens again on the same port. ``truncate_after``
makes the proxy close each connection after that many bytes of the server's answer
(a body cut off mid-way).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

__all__ = ["TcpProxy", "running_proxy"]

_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), waking any thread blocked on it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.accepted = 0  # connections accepted since start (for "fails fast" assertions)
        self.truncate_after: int | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopped = threading.Event()

    # --- control --------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _reset(listener)
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stopped.set()
        self.cut()

    # --- plumbing -------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"proxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(server)
                    return
                self._open.update((client, server))
            limit = self.truncate_after
            for source, sink, cap in ((client, server, None), (server, client, limit)):
                threading.Thread(target=self._pump, args=(source, sink, cap), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, cap: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                if cap is not None and sent + len(data) >= cap:
                    sink.sendall(data[: max(cap - sent, 0)])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        _reset(source)
        _reset(sink)


@contextlib.contextmanager
def running_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port).start()
    try:
        yield proxy
    finally:
        proxy.close()
