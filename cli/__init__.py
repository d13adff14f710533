"""recenv cli."""
