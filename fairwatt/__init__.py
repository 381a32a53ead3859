"""fairwatt: CLI, YAML config and the wiring of the application (the one place that knows every package)."""
