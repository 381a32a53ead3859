"""The version-neutral vocabulary the protocol handlers translate to, and the service that acts on it."""
