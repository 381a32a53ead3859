"""Pricing engine (pure): tariff model, pricing, OCPI tariff and CDR mapping."""
