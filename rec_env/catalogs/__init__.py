"""Shipped action catalogs (``*.yaml``)."""
