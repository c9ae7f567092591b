"""Connections that send nothing, or their request head a byte at a time, are closed.

uvicorn's only timer is the keep-alive one: armed after a response, cancelled by the first
byte of the next request. A connection that opens and stays silent, or sends its headers one
byte every few seconds (slowloris), is kept open for ever. ``head_deadline_protocol`` is
uvicorn's httptools protocol (what it runs by default) with one more timer: from the moment a
connection opens or a request starts, the request head (line and headers) must be complete
within ``serve.header_timeout_s``, or the connection is closed. The body has its own deadline
(``serve.body_timeout_s``, in ``searchrel.serving.middleware``). uvicorn takes the protocol
class through its public ``Config(http=...)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def head_deadline_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a deadline on each request head."""

    class HeadDeadlineProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()  # a connection that never sends a byte

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # each request on a kept-alive connection, from its first byte

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineProtocol
