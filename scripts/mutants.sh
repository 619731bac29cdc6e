#!/usr/bin/env bash
# `make mutants`: mutation testing of the rule book (marketplace/policy/) with mutmut.
#
# mutmut copies the project into mutants/, changes one thing at a time in the policy package
# (a comparison, a boolean, a constant, a returned value...) and runs the tests that state the
# rules (the oracle matrices; see [tool.mutmut] in pyproject.toml) against each change. A
# "survived" mutant is a change of a rule that no test noticed: either a missing test, or a
# change that does not alter behaviour (an equivalent mutant). Prints killed/survived, then the
# surviving mutants of the view rules (check / clause / doc_principals / grants).
#
#   scripts/mutants.sh [MAX_CHILDREN]      # default 2 (the machine has 2 cores)
#   MUTANTS_RESUME=1 scripts/mutants.sh    # continue an interrupted run in mutants/
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
[ "${MUTANTS_RESUME:-0}" = 1 ] || rm -rf mutants
"$BIN/mutmut" run --max-children "${1:-2}" >/dev/null 2>&1
"$BIN/python" - <<'PY'
import collections, re, subprocess, sys
out = subprocess.run([".venv/bin/mutmut", "results", "--all", "true"],
                     capture_output=True, text=True).stdout
status = {}
for line in out.splitlines():
    m = re.match(r"\s*(\S+): (.+)$", line)
    if m:
        status[m.group(1)] = m.group(2).strip()
counts = collections.Counter(status.values())
print("mutmut over marketplace/policy/:", ", ".join(f"{n} {s}" for s, n in counts.most_common()))
view = re.compile(r"ǁ(check|clause|doc_principals|valid_until|grants|can_view|visible_clause)__mutmut|"
                  r"x_can_view_\w+__mutmut|x__post_clause__mutmut|x__post_principals__mutmut")
survivors = sorted(name for name, s in status.items() if s == "survived" and view.search(name))
print(f"survivors in view rules: {len(survivors)}")
for name in survivors:
    print("  ", name)
PY
