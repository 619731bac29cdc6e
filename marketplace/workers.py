"""What the background workers (search index writer, mail sender) and the session hooks
that feed them share: the per-process worker thread, and Session listeners attached once.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_listening: set[str] = set()


def listen_on_sessions(owner: str, *listeners: tuple[str, Callable]) -> None:
    """Attach (event name, function) listeners to every Session, once per process for this
    `owner`: apps are created many times in one process (tests, CLI), and a listener
    attached twice would run twice."""
    if owner in _listening:
        return
    for name, fn in listeners:
        event.listen(Session, name, fn)
    _listening.add(owner)


class ThreadRuntime:
    """Per app: the worker mode and (in "thread" mode) this process's worker thread, started
    on demand, and again in a forked child or after it stopped. Subclasses say how to make
    the thread (it has ``pid`` and a ``wake`` event)."""

    # Logged when this process's thread is found stopped (None: restart silently).
    stopped_message: str | None = None

    def __init__(self, app: Flask, mode: str):
        self.app = app
        self.mode = mode
        self._thread = None
        self._thread_lock = threading.Lock()

    def new_thread(self) -> threading.Thread:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def start_thread(self) -> None:
        with self._thread_lock:
            t = self._thread
            if t is not None and t.is_alive() and t.pid == os.getpid():
                return
            if t is not None and t.pid == os.getpid() and self.stopped_message:
                log.error(self.stopped_message)
            self._thread = self.new_thread()
            self._thread.start()

    def wake(self) -> None:
        if self._thread is not None:
            self._thread.wake.set()
