"""Drop-in adapters for other active-learning libraries (imported on demand)."""
