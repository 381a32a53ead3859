"""OCPP-J protocol layer: framing, schema validation, per-connection sessions and handlers.

Works on any object with async ``recv()``/``send()``/``close()`` (see :mod:`csms.protocol.connection`);
only :mod:`csms.server` touches WebSockets.
"""
