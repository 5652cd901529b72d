"""`python -m entrepot.cli …`: the same commands as the `entrepot` script."""

from entrepot.cli.main import app

app()
