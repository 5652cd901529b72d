"""Sales: quotes, sales orders, shipments, returns (order-to-cash)."""
