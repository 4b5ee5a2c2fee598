"""Hybrid sampling: integrators, the named samplers, the volume-fraction posterior, the hybrid generator.

Modules: ``conditioning``, ``hybrid``, ``integrators``, ``samplers``, ``samples``, ``settings``. Import names from the module that defines them.
"""
