"""Helpers shared by the site's downloads (CSV and JSON files people take away)."""
