"""Gateway routers, one module per resource."""
