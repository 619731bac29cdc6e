"""Unbound extension objects, bound to the app in create_app()."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData

# Deterministic constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Every exemption from Flask-WTF's automatic CSRF check, with its reason: nothing else is
# exempt (no view carries @csrf.exempt; create_app applies these two lists). An exempt
# blueprint must check CSRF itself wherever a cookie session writes (the API does, in
# api/auth.py); an exempt view must act only on a credential in its URL, never on the
# visitor's cookie (tests/test_hardening_methods.py checks all of it).
CSRF_EXEMPT_BLUEPRINTS = {
    "api": "CSRF checked by the API itself for cookie sessions (marketplace/api/auth.py calls "
           "csrf.protect() on every cookie-session write); bearer tokens are not ambient "
           "credentials, so a token request needs no CSRF token",
}
CSRF_EXEMPT_VIEWS = {
    "notifications.unsubscribe": "one-click unsubscribe (RFC 8058): mail programs POST to the link "
                                 "without any page or token of ours; the signed token in the URL is "
                                 "the credential and names the account, whoever is signed in",
}
limiter = Limiter(key_func=get_remote_address, default_limits=[])
