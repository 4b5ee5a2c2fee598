"""The ``lgtutorial`` command line: argparse from the options objects, files, messages and exit codes.

Modules: ``generate``, ``main``, ``options``, ``train``, ``volume``. Import names from the module that defines them.
"""
