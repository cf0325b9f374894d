"""A one-connection TCP echo server on an ephemeral port of 127.0.0.1, for tunnel tests."""
from __future__ import annotations

import socket
import threading


def echo_once(transform=bytes) -> socket.socket:
    """A listening socket whose thread accepts one connection and sends back `transform(chunk)`
    for each chunk it reads until the client shuts its side; the caller closes the socket (its
    port: `server.getsockname()[1]`)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(transform(data))

    threading.Thread(target=serve, daemon=True).start()
    return server
