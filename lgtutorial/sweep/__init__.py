"""Datasets at scale: sweep designs and their run on dask into one Zarr store.

Modules: ``design``, ``parsing``, ``run``, ``store``. Import names from the module that defines them.
"""
