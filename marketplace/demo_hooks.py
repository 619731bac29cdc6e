"""Feature packages append functions(users_by_email, orgs_by_name) that add their demo data."""
HOOKS: list = []
