"""The HTTP API's operation modules; each declares its routes with ``register(api, runtime)``."""
