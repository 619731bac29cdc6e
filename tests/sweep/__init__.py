"""The leak sweep (issue 15): a world with a canary in every kind of private content, an
oracle saying which personas may see each canary, and a walker that reads every channel as
each persona. tests/test_leak_sweep.py runs it."""
