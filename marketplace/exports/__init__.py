"""Downloads people take away: spreadsheet-safe CSV (csvsafe.py), a challenge's exports with
proof (challenge.py: ideas with scores per round, decisions and receipts as CSV and JSON; the
ZIP evidence bundle with its SHA-256 manifest), and the helpers shared by the others."""
