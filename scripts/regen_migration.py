"""Regenerate the single initial migration from the models.

Entrepot has not shipped a release yet, so its schema history is one initial
migration generated from the models. After the first release this script is
retired and every schema change gets its own migration (`alembic revision
--autogenerate`), never an edit of a shipped one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from entrepot.db.bootstrap import MIGRATIONS, alembic_config
from entrepot.db.engine import get_engine


def main() -> None:
    versions = MIGRATIONS / "versions"
    for old in versions.glob("*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'gen.db'}"
        cfg = alembic_config(url)
        with get_engine(url).begin() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    print("regenerated", *sorted(p.name for p in versions.glob("*.py")), file=sys.stderr)


if __name__ == "__main__":
    main()
