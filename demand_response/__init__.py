"""Demand response: utilities' OpenADR 2.0b events (and operators' manual peak events) as station caps.

* :mod:`demand_response.config`: the programs (one VEN each), parsed from YAML into frozen objects.
* :mod:`demand_response.events`: an event as we keep it (from an OpenADR distribution or an operator).
* :mod:`demand_response.mapping`: pure: events -> :class:`optimizer.types.CapWindow`s and prices per station.
* :mod:`demand_response.store`: events in PostgreSQL, so a restart keeps enforcing them.
* :mod:`demand_response.enforcer`: hands the mapped caps to the smart-charging loop, over time.
* :mod:`demand_response.ven`: one ``openleadr`` client per program (opt in/out, telemetry reports).
* :mod:`demand_response.app`: :func:`install` wires it all into a CSMS app.
"""
