"""The reverter's thread: a pass every second, or at once when woken (a new incident, a take-over)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from watcher.core.outcome import Handled


class Worker:
    """Runs `one_pass` until stopped; a pass that raises is logged and the next one runs: the worker must
    outlive one bad incident."""

    def __init__(self, one_pass: Callable[[], Iterable[Handled]], log: Any, name: str = "reverter"):
        self.one_pass = one_pass
        self.log = log
        self.name = name
        self.woken = threading.Event()
        self.stopping = threading.Event()  # asked between two incidents too: a stopping pass ends early
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.woken.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                for handled in self.one_pass():
                    self.log.info("incident_handled", summary=handled.sentence())
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad incident; it is logged
                self.log.exception("reverter_step_failed", error=str(exc))
            self.woken.wait(1.0)
            self.woken.clear()
