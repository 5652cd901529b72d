"""Command line (Typer): thin wrappers over services."""
