"""billing: rating, receipts, payment (gateway interface + Stripe-style adapter), ledger, retries.

Entry points: :func:`billing.app.install` (after ``sessions.app.install``; pass
:func:`billing.api.register` in its ``extra_api``), :func:`billing.corrections.correct_session`,
:func:`billing.queries.reconcile`, ``python -m billing.test_gateway``. See ``billing/README.md``.
"""
