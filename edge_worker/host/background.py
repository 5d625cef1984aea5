"""A daemon thread that repeats a step until stopped: what release sync and the receipt
uploader both are, so their start, stop and wait behave the same."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Background:
    """Runs `step()` again after the number of seconds it returns, until `stop()`; a stop
    wakes a waiting loop at once, so a PoP shuts down without waiting out a poll or backoff."""

    def __init__(self, name: str, step: Callable[[], float]) -> None:
        self._name = name
        self._step = step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self._step()
            if delay:
                self._stop.wait(delay)
