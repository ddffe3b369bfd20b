"""Waking long-polls: one asyncio.Event per node that is waiting.

Changes are committed on worker threads; `notify` hands the wake-up to the
event loop with call_soon_threadsafe. A poller takes the node's event and
checks the version in one synchronous step on the loop, so a change is
either seen by the check or wakes the event: never lost in between.
`drain` (SIGTERM/SIGINT) wakes everyone and makes new waits return at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator


class Watchers:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self.draining = False
        self.polling = 0  # long-polls in progress (healthz; the benchmark reads it)

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        self.polling += 1
        try:
            yield
        finally:
            self.polling -= 1

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.draining = False

    def event(self, name: str) -> asyncio.Event:
        """The event the next change of `name` sets (call on the loop)."""
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def notify(self, names: Iterable[str]) -> None:
        """Wake the pollers of `names`; callable from any thread."""
        wanted = list(names)
        if self._loop is None or not wanted:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(self._wake, wanted)

    def _wake(self, names: list[str]) -> None:
        for name in names:
            event = self._events.pop(name, None)
            if event is not None:
                event.set()

    def drain(self) -> None:
        """Answer every waiting long-poll now ("no change"), and every later one at once."""
        self.draining = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, list(self._events))

    @property
    def waiting(self) -> int:
        return len(self._events)
