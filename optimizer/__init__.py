"""optimizer: the per-station smart-charging solver (pure: no I/O)."""
