"""Judging samples against a reference: measures, comparison, the case studies' criteria, training reports.

Modules: ``compare``, ``criteria``, ``measures``, ``settings``, ``table``, ``training_report``. Import names from the module that defines them.
"""
