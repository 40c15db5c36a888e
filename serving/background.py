"""A daemon thread that runs a loop until stopped, with a wake-up call: the service's background workers."""

from __future__ import annotations

import threading


class BackgroundLoop:
    """Runs :meth:`_run` in a daemon thread; :meth:`wake` cuts its wait short, :meth:`stop` ends it.

    Subclasses call ``super().__init__(name)`` and loop in ``_run`` while ``self._stop`` is not
    set, waiting on ``self._wake``.
    """

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop's thread."""
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next pass now instead of after the wait."""
        self._wake.set()

    def _stop_thread(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to end and wait for the current pass (at most ``timeout_s``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def stop(self) -> None:
        """End the loop after its current pass."""
        self._stop_thread()

    def _run(self) -> None:  # pragma: no cover - subclasses define the loop
        raise NotImplementedError
