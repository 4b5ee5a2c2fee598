"""Three dimensions from one 2D micrograph: 3D statistics, the slice-wise score, the 3D generator, export.

Modules: ``export``, ``generator``, ``settings``, ``slice_score``, ``slices``, ``statistics``. Import names from the module that defines them.
"""
