"""Entrepot: an open-source ERP platform for distribution businesses."""

__version__ = "0.1.0"
