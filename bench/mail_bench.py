"""Mail benchmark: how fast mails are queued (rendered, both parts, in the caller's
transaction) and sent by the worker through a real SMTP server (aiosmtpd, in this process,
on loopback), with the per-message claim and mark the worker does. Prints one table.

    python bench/mail_bench.py              # 500 mails
    python bench/mail_bench.py --mails 2000

Needs the test extra (aiosmtpd). Wall-clock and CPU time are both shown: the machine may be
shared.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mails", type=int, default=500)
    args = ap.parse_args()

    from aiosmtpd.controller import Controller

    from marketplace import create_app
    from marketplace.config import TestingConfig
    from marketplace.extensions import db
    from marketplace.mail import worker
    from marketplace.mail.outbox import queue_text

    class Sink:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Sink.count += 1
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Sink(), hostname="127.0.0.1", port=port)
    ctl.start()
    tmp = tempfile.mkdtemp(prefix="mail-bench-")
    try:
        class Cfg(TestingConfig):
            SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp}/bench.db"
            SEARCH_INDEX_DIR = f"{tmp}/search"
            MAIL_BACKEND = "smtp"
            MAIL_SERVER = "127.0.0.1"
            MAIL_PORT = port
            SERVER_NAME = "market.example.org"

        app = create_app(Cfg)
        with app.app_context():
            db.create_all()
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(args.mails):
                queue_text(f"person{i}@bench.test", f"Message {i}",
                           f"Hello,\n\nThis is message {i}.\n\nhttps://market.example.org/challenges/{i}")
                if i % 100 == 99:
                    db.session.commit()
            db.session.commit()
            q_wall, q_cpu = time.perf_counter() - t0, time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            sent = 0
            while True:
                n = worker.send_pending(limit=200)["sent"]
                if not n:
                    break
                sent += n
            s_wall, s_cpu = time.perf_counter() - t0, time.process_time() - c0
            db.session.remove()
            db.engine.dispose()
        assert sent == args.mails == Sink.count, (sent, Sink.count)
        print(f"{'step':<34}{'mails':>7}{'wall s':>9}{'cpu s':>8}{'mails/s (wall)':>16}")
        print(f"{'queue (render both parts, insert)':<34}{args.mails:>7}{q_wall:>9.2f}{q_cpu:>8.2f}"
              f"{args.mails / q_wall:>16.0f}")
        print(f"{'send (claim, SMTP, mark) ':<34}{sent:>7}{s_wall:>9.2f}{s_cpu:>8.2f}{sent / s_wall:>16.0f}")
    finally:
        ctl.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
