"""recenv serve."""
