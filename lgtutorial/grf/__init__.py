"""The global layer: the Gaussian random field, interpolated and resized statistics, the statistics a model carries.

Modules: ``field``, ``interpolation``, ``material``, ``segmentation``, ``settings``. Import names from the module that defines them.
"""
