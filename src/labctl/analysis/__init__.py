"""labctl.analysis."""
