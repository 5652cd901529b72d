"""Identity and governance: tenants, users, roles, API keys, the audit trail."""
