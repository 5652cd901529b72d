"""ASGI entry point for uvicorn (`entrepot.api.asgi:app`)."""

from entrepot.api.app import create_app

app = create_app()
