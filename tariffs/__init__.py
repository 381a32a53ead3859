"""Pricing engine (pure): tariff model, pricing, OCPI tariff and CDR mapping.

No I/O here and nothing imported from the I/O packages. Entry points:

* ``tariffs.ocpi.parse_tariff`` / ``tariff_to_ocpi``: OCPI 2.2.1 ``Tariff`` JSON <-> ``Tariff``.
* ``tariffs.ocpi.parse_session``: OCPI charging periods -> ``Session``.
* ``tariffs.engine.price_session`` / ``live_estimate``: -> ``CdrTotals`` (exact ``Decimal``).
* ``tariffs.ocpi.cdr_totals_to_ocpi``: CDR totals rounded per currency (``tariffs.money``).
* ``tariffs.prices.energy_price_per_kwh_at`` / ``energy_prices`` / ``prices_at`` (re-exported by
  ``tariffs.engine``): prices now and time-of-use prices for the solver.
* ``tariffs.model.TariffVersions``: the version in force when a session started.
* ``tariffs.promotions``: membership tiers and promotion codes (our extension, not OCPI).
"""
