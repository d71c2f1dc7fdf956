"""The four Our Voice services, each its own process."""
