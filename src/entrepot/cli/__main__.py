"""`python -m entrepot.cli …`: the same commands as the `entrepot` script."""

from entrepot.cli.main import app

if __name__ == "__main__":  # run as `-m`, never on a mere import
    app()
