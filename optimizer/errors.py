"""The optimizer's exceptions: one base, one subclass per kind of failure."""


class OptimizerError(Exception):
    """Base of every error the optimizer raises."""


class NetworkError(OptimizerError):
    """The site's limit tree and its EVSEs do not fit together."""


class SnapshotError(OptimizerError):
    """A station snapshot that cannot be scheduled (unknown EVSE, inconsistent data)."""


class ProfileError(OptimizerError):
    """A schedule that cannot become a valid OCPP charging profile, or a profile the schemas reject."""


class DeclarationError(OptimizerError):
    """A declared schedule of arrivals that cannot stand for a day (times out of order, days left out)."""
