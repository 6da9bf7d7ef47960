"""labctl.store."""
