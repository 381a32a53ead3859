"""demand_response: built by its own issue; empty until then."""
