"""The routing service."""
