"""`make run` in one process: migrate, demo data on first start, print the accounts, serve.

Doing the three steps as `flask db upgrade`, `flask demo load --if-empty` and `flask run`
imports the app three times (about 2.5 s each here); one process makes a second `make run`
start in about 3 s. The steps are the same code: Flask-Migrate's `upgrade()` is what
`flask db upgrade` calls, and the demo command is invoked as the CLI would.

Run it through scripts/run.sh (which generates instance/secret_key on first start; the app
reads it when SECRET_KEY is unset); HOST and PORT pick the address. Logging is the app's own
configuration (marketplace/logs.py): the in-process migration cannot switch it off.
"""
from __future__ import annotations

import os
import sys

from flask.cli import ScriptInfo


def main() -> int:
    from app import app  # create_app() with the environment's configuration
    from flask_migrate import upgrade

    from marketplace.cli import demo_cli

    with app.app_context():
        upgrade()  # == flask db upgrade
    # == flask demo load --if-empty: loads on an empty database only, and either way lists
    # each demo account with what it is (marketplace.demo.describe_accounts).
    demo_cli.main(["load", "--if-empty"], prog_name="flask demo",
                  obj=ScriptInfo(create_app=lambda: app), standalone_mode=False)
    from marketplace.mail import describe_backend
    print(describe_backend(app), flush=True)  # make run: the .eml files of every mail sent
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    print(f"\nServing on http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    app.run(host=host, port=port, debug=app.debug, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
