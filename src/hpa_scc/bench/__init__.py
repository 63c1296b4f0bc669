"""Floor 7: benchmarks that print figures (`hpa-scc bench ...`), one module per bench."""
