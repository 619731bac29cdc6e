"""Writes: check policy, sanitise, mutate, flush, record events; the search outbox is
filled automatically in the same transaction (marketplace/search/outbox.py)."""
