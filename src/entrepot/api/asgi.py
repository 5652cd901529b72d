"""ASGI entry point for uvicorn (`entrepot.api.asgi:app`)."""

from entrepot.api.app import create_app
from entrepot.kernel.process import settle_after_startup

app = create_app()

# The app, its ~200 routes, schemas and mappers are ~175,000 objects that live as
# long as the process. Without this, each full garbage collection walks all of
# them again (50-150 ms, paid by whichever request triggers it: a p99 spike);
# frozen, they are skipped and a full collection sees only request garbage.
# (API processes are spawned: the CLI's own call does not reach them.)
settle_after_startup()
