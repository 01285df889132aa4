"""The pytest plugin, one module per concern (as pytest's own plugins are):

- ``options``: every option, its env and ini names, and how a raw value is read;
- ``settings``: the options checked and turned into settings, the scenarios, read at configure time;
- ``cases``: the checks derived from the intent (parametrisation, ordering by scenario);
- ``fixtures``: the target, applied scenarios and their probe answers, clients, evidence;
- ``outcomes``: the run's outcomes mapped to pytest's and back, the check's record;
- ``collector``: records on test reports and, on the controller, results.json, report, summary.

Under pytest-xdist every worker brings up its own local stack (its own ports and folders):
nothing is shared, so nothing needs a lock. Evidence rides on the test reports (plain JSON), so
the controller collects it from every worker and writes the results once.
"""

from __future__ import annotations

pytest_plugins = [
    "harness.plugin.options",
    "harness.plugin.settings",
    "harness.plugin.cases",
    "harness.plugin.fixtures",
    "harness.plugin.outcomes",
    "harness.plugin.collector",
]
