"""The rule book's shape (issue 9): importing the policy declares every rule, with or without
an app, without importing the features that use it; unknown things fail closed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace import policy
from marketplace.models import Item, Question

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from marketplace import policy
before = sorted(f"{{m.__name__}}.{{a}}" for m, a in policy.RULES)
site_before = sorted(policy.RULE_BOOK.site)
features = sorted(m for m in sys.modules if m.startswith("marketplace.") and m.split(".")[1] in
                  ("moderation", "ideas", "engagement", "invitations", "lists", "search", "services"))
from marketplace import create_app
from marketplace.config import TestingConfig
create_app(TestingConfig)
after = sorted(f"{{m.__name__}}.{{a}}" for m, a in policy.RULES)
print(json.dumps({{"before": before, "after": after, "site_before": site_before,
                  "site_after": sorted(policy.RULE_BOOK.site), "features": features}}))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    env = {"MARKETPLACE_INSTANCE": str(tmp_path_factory.mktemp("probe")), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_rule_is_declared_by_importing_the_policy_alone(probe):
    assert probe["before"] == probe["after"]
    assert probe["site_before"] == probe["site_after"]
    # The exceptions moderation brings are declared, not added when its blueprint registers.
    for rule in ("Idea.view", "Idea.disqualify", "Question.moderate", "Comment.report", "Item.lock_discussion",
                 "Report.view", "Appeal.decide", "ModerationFlag.resolve", "User.suspend"):
        assert rule in probe["before"]
    assert {"administer", "moderate", "use_moderation", "manage_moderator_scopes"} <= set(probe["site_before"])


def test_the_policy_imports_no_feature_that_uses_it(probe):
    """No import cycle: the rule book stands on the models alone."""
    assert probe["features"] == []


def test_one_rule_object_per_model_with_its_forms_side_by_side():
    models = [rule.model for rule in policy.RULE_BOOK]
    assert len(models) == len(set(models))
    for rule in policy.RULE_BOOK:
        module = sys.modules[type(rule).__module__]
        assert module.__doc__ and len(module.__doc__) > 200, f"{module.__name__} states its rules in prose"
        if rule.has_view:
            assert type(rule).check is not policy.core.Rule.check, f"{type(rule).__name__} has no per-object check"
    items = policy.RULE_BOOK.rule(Item)
    assert type(items).clause is not policy.core.Rule.clause
    assert type(items).doc_principals is not policy.core.Rule.doc_principals
    q = policy.RULE_BOOK.rule(Question)
    assert q.parent.model is Item and q.exceptions


def test_unknown_models_actions_and_site_actions_fail_closed(app):
    with app.app_context():
        with pytest.raises(policy.PolicyError):
            policy.can(None, "view", object())
        with pytest.raises(policy.PolicyError):
            policy.can(None, "fly", Item(kind="challenge", visibility="public", status="open"))
        with pytest.raises(policy.PolicyError):
            policy.can(None, "rule_the_world")
        with pytest.raises(policy.PolicyError):
            policy.visible(None, object)
        with pytest.raises(policy.PolicyError):
            policy.doc_principals(object())
