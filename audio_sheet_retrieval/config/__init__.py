"""Settings (data and experiment roots) and experiment configurations."""
