"""Your own micrograph end to end: inspect, plan, train, generate, report.

Modules: ``settings`` (``FitSettings``: the options of ``lgtutorial fit`` and ``fit()``, checked before
any work), ``inspect`` (what the micrograph is), ``plan`` (what to train, and why), ``checks`` (the
report's checks of the samples), ``report`` (``report.md`` and ``summary.json``), ``fit`` (``fit()``:
all of it in order). Import names from the module that defines them.
"""
