"""A custom transport: a relay that answers `SINCE <seq>` with one JSON change row per line."""
import json
import socket

from cloudsync import Change, InvalidResponse, NetworkError, Transport


class LineRelayTransport(Transport):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.address = (host, port)

    def stream(self, request, connection):
        try:
            with (socket.create_connection(self.address, request.connect_timeout) as sock,
                  sock.makefile("rb") as lines):
                if not connection.set_abort(lambda: sock.shutdown(socket.SHUT_RDWR)):
                    return  # close() came first
                sock.settimeout(None)  # silence is for the subscription's stall watchdog to judge
                sock.sendall(b"SINCE %s\n" % json.dumps(request.since).encode())
                for line in lines:  # an empty line is a heartbeat: alive, no change
                    connection.received(len(line))
                    if line.strip():
                        yield Change.from_row(json.loads(line))
        except OSError as exc:
            raise NetworkError(f"relay: {exc}") from exc
        except (ValueError, KeyError) as exc:  # a line that is not a change row
            raise InvalidResponse(f"relay: {exc!r}") from exc
        raise NetworkError("relay: connection lost")
