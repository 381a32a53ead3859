"""The operator REST API (``/v1/operator/...``) and the network diff/apply engine behind it.

Wiring (in ``fairwatt serve``)::

    from fairwatt.operator import OperatorSettings, operator_api
    sessions.app.install(app, sessions_settings,
                         extra_api=[operator_api(OperatorSettings(environ=os.environ)), ...])
    install_observability(app)      # /metrics; after the loop and demand response are installed

Operators authenticate with keys minted by ``fairwatt operators create-key --cpo ID`` (a
long-lived operator JWT signed with the same token secret as the driver API).
"""

from fairwatt.operator.app import FAIRWATT_MIGRATIONS, install_observability, operator_api
from fairwatt.operator.common import OperatorSettings

__all__ = ["FAIRWATT_MIGRATIONS", "OperatorSettings", "install_observability", "operator_api"]
