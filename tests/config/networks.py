"""Network files shared by the config and CLI tests."""

# Lines 1-12 of a network file: one tariff ``std`` and the first station ``s1`` up to its limits;
# a test goes on with the station's ``limits:`` on line 13.
HEAD = """\
version: 1
operator: acme
tariffs:
  - id: std
    currency: EUR
    elements:
      - price_components: [{type: ENERGY, price: 0.40, step_size: 1}]
stations:
  - id: s1
    time_zone: Europe/Berlin
    grid_limit_kw: 50
    tariff: std
"""
