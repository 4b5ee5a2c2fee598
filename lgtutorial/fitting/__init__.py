"""Your own micrograph end to end: inspect, plan, train, generate, report.

Modules: ``fit``. Import names from the module that defines them.
"""
