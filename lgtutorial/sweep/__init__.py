"""Datasets at scale: sweep designs and their run on dask into one Zarr store.

Modules: ``design``, ``run``. Import names from the module that defines them.
"""
