"""Connection limits that uvicorn lacks: a deadline for each request to arrive whole.

uvicorn's keep-alive timeout covers only idle time between requests, and every byte received
resets it, so a client that trickles its request headers (or body) a byte at a time keeps a
connection -- and a file descriptor -- for as long as it likes; a few hundred such clients
starve everyone else. ASGI middleware cannot help, as it runs only once the headers are in.
`RequestDeadlineH11` (uvicorn's h11 protocol plus one timer) closes a connection whose request
has not fully arrived within `deadline_s` of the connection opening or of the previous
response. Once a request is in, the timer is off: slow judging is never cut.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# The client's states once its whole request is in: DONE, or MUST_CLOSE when it asked to close
# the connection after this request (`Connection: close`, HTTP/1.0).
REQUEST_IN = (h11.DONE, h11.MUST_CLOSE)
KEEP_ALIVE_S = 5  # idle time allowed between requests on one connection (uvicorn's default)
MAX_HEADER_BYTES = 16 * 1024  # request line and headers (h11's incomplete-event limit)


class RequestDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request does not arrive in time."""

    deadline_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.deadline_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.conn.their_state not in REQUEST_IN and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state in REQUEST_IN:  # the whole request is in
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # first: super() may go on to a pipelined request that is already whole
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_options(request_deadline_s: float, max_queue: int) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` that bound what slow or many clients can hold."""
    protocol = type("RequestDeadlineH11", (RequestDeadlineH11,), {"deadline_s": request_deadline_s})
    return {
        "http": protocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        # Past this many open connections (or tasks) uvicorn answers 503 at once: room for a full
        # queue of waiting requests, a batch in flight and health checks, not for unbounded growth.
        "limit_concurrency": 2 * max_queue + 64,
    }
