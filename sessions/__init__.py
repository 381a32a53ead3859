"""sessions: built by its own issue; empty until then."""
