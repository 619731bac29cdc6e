"""Oracles: who may see each kind of row, written from the rules as the README, the issues and
the models' docstrings state them, as plain Python over plain attributes.

Nothing here imports marketplace.policy or builds SQL with it. The rows the rules talk about
are read once into plain attribute bags (`facts.Facts`); each feature module answers
"may this person see this row?" from those facts alone. tests/test_oracle_*.py compare the
answers with the policy's three faces: can(), visible() and the search principals.

One module per feature:
  facts.py        plain snapshot of the database, and Person (what a viewer is)
  items.py        items (the README's visibility table; the foundation oracle in
                  tests/factories_foundation.py is the same rule for the item matrix)
  moderation.py   who moderates what; reports, actions, appeals, flags; moderators' cases
  engagement.py   questions, answers, comments, asset requests
  ideas.py        ideas, attachments, terms, acceptances, review notes
  invitations.py  invitations, invitation lists, list members, list shares, list attachments
  harness.py      the matrix runner (compares the oracle with the policy's faces)
"""
