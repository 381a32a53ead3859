"""csms: the OCPP central system (1.6J and 2.0.1): WebSocket server, protocol layer, domain service,
storage and command bus. Entry points: :func:`csms.server.create_app` and :func:`csms.server.run`."""
