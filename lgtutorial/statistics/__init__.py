"""Measurements of microstructures: 1- and 2-point statistics, chords, connected regions, higher-order statistics, PCA.

Modules: ``chords``, ``clusters``, ``higher_order``, ``pca``, ``two_point``. Import names from the module that defines them.
"""
