"""A tiny TCP proxy on 127.0.0.1 that can go silent: ``freeze()`` stops forwarding on
every connection open at that moment, in both directions, without closing anything
(a half-open connection: no FIN, no RST, as behind a dead NAT or a pulled cable).
Connections made after the freeze are forwarded normally."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class FreezableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._stopped = threading.Event()
        #: Connections accepted so far.
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            frozen = threading.Event()
            with self._lock:
                self._pairs.append((client, upstream, frozen))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream, frozen), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, frozen: threading.Event) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._stopped.is_set() and not frozen.is_set():
                for key, _ in sel.select(timeout=0.05):
                    if frozen.is_set():
                        break  # bytes that arrive after the freeze are never forwarded
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):  # closed under us (the test ended)
            return
        finally:
            sel.close()
            if not frozen.is_set():
                for sock in (a, b):
                    with contextlib.suppress(OSError):
                        sock.close()

    def freeze(self) -> None:
        """Stop forwarding on every connection open now, keeping them open."""
        with self._lock:
            for _, _, frozen in self._pairs:
                frozen.set()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for a, b, _ in self._pairs:
                for sock in (a, b):
                    with contextlib.suppress(OSError):
                        sock.close()

    def __enter__(self) -> FreezableProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
