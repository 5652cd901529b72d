"""Inventory use cases, one module per concern; `entrepot.inventory.service` is the public face."""
