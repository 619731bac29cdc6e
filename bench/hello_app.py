"""The stack's ceiling for bench/pages.py and bench/load.py: a Flask hello-world, served by
gunicorn with the project's own settings (gunicorn.conf.py, same workers) beside the site."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"
