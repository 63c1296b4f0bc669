"""Floor 8: the `hpa-scc` command line and the demo."""
