"""labctl.simulators."""
