"""The CLI subcommands, one module per area (see fairwatt.cli)."""
