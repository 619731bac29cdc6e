"""The OpenAPI 3.1 document: valid (openapi-spec-validator), complete (every /api/v1 route is
in it, and nothing else), served with a readable reference page that loads nothing from
elsewhere; and schemathesis run against it in-process, as an anonymous caller, a contributor
and an organisation admin (bearer tokens): no 5xx, every answer conforms to the document
(status, headers, body), and bad input gets the error shape.

The schemathesis runs are bounded (MAX_EXAMPLES per operation and mode) so the suite stays
quick; path parameters are pinned to rows of a small world so operations get past 404.
Schemathesis's `positive_data_acceptance` check is left out: the services apply rules no
schema states (a deadline in the future, a reason to decline, an e-mail with an account) and
refuse such schema-valid input with a 400/422 in the error shape, which the other checks
hold to the document.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from marketplace.api.core import OPERATIONS
from marketplace.api.openapi import openapi_path
from marketplace.extensions import db
from marketplace.models import utcnow
from marketplace.services import engagement as eng_svc
from marketplace.services import invitations as inv_svc
from marketplace.services import lists as lists_svc
from marketplace.services import tokens as token_svc

from .factories import Factories
from .factories_foundation import dispose, make_app
from .factories_ideas import IdeaFactories

MAX_EXAMPLES = 3
PERSONAS = ("anonymous", "contributor", "org_admin")


def test_document_is_valid_openapi_3_1(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_api_route_is_in_the_document_and_nothing_else(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routed.add((re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method))
    assert routed == documented
    assert {openapi_path(op.rule) for op in OPERATIONS.values()} == set(doc["paths"])


def test_reference_page_lists_every_operation_and_loads_nothing_from_elsewhere(client):
    r = client.get("/api/docs")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, ops in doc["paths"].items():
        for method in ops:
            assert f"{method.upper()} {path}" in page
    # Scripts, styles, images and fonts come from this site only.
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not re.match(r"^(https?:)?//", url) or url.startswith("http://localhost/"), url
    assert "default-src 'self'" in r.headers.get("Content-Security-Policy", "default-src 'self'")


# --------------------------------------------------------------------------- schemathesis


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # No search writes here: Hypothesis seeds `random` for each example, and Whoosh names its
    # segments with `random`, so two writes in one run would pick the same segment name.
    app = make_app(tmp_path_factory.mktemp("openapi"), SEARCH_WORKER="off")
    with app.app_context():
        f = Factories()
        fi = IdeaFactories(f)
        owner = f.make_user(name="Owner")
        admin = f.make_user(name="Admin")
        contributor = f.make_user(name="Contributor")
        org = f.make_org(name="Acme", kind="cluster", owner=owner, admins=(admin,))
        setup = fi.challenge(owner=owner, org=org, confidentiality="open")
        ch = setup.challenge
        idea = fi.submit(contributor, ch)
        failure = f.make_item(org, kind="failure", visibility="public")
        asset = f.make_item(org, kind="asset", visibility="registered")
        q = eng_svc.ask_question(contributor, ch, "How big is it?")
        c = eng_svc.add_comment(contributor, failure, "We saw this too.")
        req = eng_svc.send_request(contributor, asset, "interest", "", terms_version=None, terms_digest=None)
        inv, _token = inv_svc.create_invitation(admin, ch, "guest@example.org")
        lst = lists_svc.create_list(admin, org, "Experts")
        member = lists_svc.add_member(admin, lst, user=contributor)
        expiry = utcnow() + timedelta(days=30)
        tokens = {
            "contributor": token_svc.create_personal_token(contributor, "st", list(token_svc.SCOPES), expiry)[1],
            "org_admin": token_svc.create_personal_token(admin, "st", list(token_svc.SCOPES), expiry)[1],
        }
        ids = {"item_id": ch.id, "slug": org.slug, "idea_id": idea.id, "question_id": q.id,
               "request_id": req.id, "invitation_id": inv.id, "list_id": lst.id, "member_id": member.id,
               "comment_id": c.id}
    yield app, tokens, ids
    dispose(app)


def _run(op, mode: GenerationMode, headers: dict, pinned: dict) -> None:
    params = {p["name"] for p in op.definition.raw.get("parameters", []) if p.get("in") == "path"}
    path_parameters = {k: v for k, v in pinned.items() if k in params} if mode == GenerationMode.POSITIVE else None
    strategy = op.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()


@pytest.mark.parametrize("persona", PERSONAS)
def test_schemathesis_finds_no_5xx_and_no_answer_off_the_document(world, persona):
    app, tokens, ids = world
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {tokens[persona]}"} if persona in tokens else {}
    failures = []
    for result in schema.get_all_operations():
        op = result.ok()
        has_input = bool(op.definition.raw.get("parameters") or op.definition.raw.get("requestBody"))
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,)
        for mode in modes:
            try:
                _run(op, mode, headers, ids)
            except Unsatisfiable:
                continue  # no input can break this operation's schema (e.g. a lone slug in the path)
            except (Exception, BaseExceptionGroup) as e:  # collect every operation's failure, then report all
                failures.append(f"{op.method.upper()} {op.path} [{mode.value}]: {str(e)[:1500]}")
    assert failures == [], "\n\n".join(failures)
