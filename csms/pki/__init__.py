"""The central system's PKI (issue 8): Plug & Charge contract certificates, charger certificates.

See ``csms/pki/README.md``. Apps get it with :func:`csms.pki.app.install`.
"""
