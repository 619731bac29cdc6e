"""A Flask-Mailman backend that writes each message to its own `.eml` file (the `make run`
default: open them with any mail program). Flask-Mailman's own "file" backend appends
many messages to one `.log` file instead."""
from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

from flask_mailman.backends.base import BaseEmailBackend

_lock = threading.Lock()
_counter = [0]


class EmailBackend(BaseEmailBackend):
    def __init__(self, *args, file_path: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.file_path = os.path.abspath(file_path or self.mailman.file_path)
        os.makedirs(self.file_path, exist_ok=True)

    def send_messages(self, messages) -> int:
        sent = 0
        for message in messages:
            data = message.message().as_bytes()
            with _lock:
                _counter[0] += 1
                n = _counter[0]
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            path = os.path.join(self.file_path, f"{stamp}-{os.getpid()}-{n:06d}.eml")
            tmp = path + ".part"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # a reader never sees half a message
            sent += 1
        return sent
