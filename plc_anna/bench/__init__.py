"""Benchmarks behind ``plc-anna bench …``: what every number in the docs comes from.

Each benchmark is a function returning a JSON-ready dict, seeded and
reproducible; baselines are measured in the same run. Plots need matplotlib
(the ``bench`` extra) and river's detectors need river.
"""
