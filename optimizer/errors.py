"""The optimizer's exceptions: one base, one subclass per kind of failure."""


class OptimizerError(Exception):
    """Base of every error the optimizer raises."""


class ProfileError(OptimizerError):
    """A schedule that cannot become a valid OCPP charging profile, or a profile the schemas reject."""
