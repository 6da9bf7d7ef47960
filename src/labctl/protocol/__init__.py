"""labctl.protocol."""
