"""Database: engine and sessions, tenant filtering, unit of work, migrations."""
