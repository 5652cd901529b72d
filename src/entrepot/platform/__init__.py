"""Platform: tenant templates and provisioning, hierarchy, demo data."""
