"""Built-in plugins: sources, enrichers, filters and outputs."""
