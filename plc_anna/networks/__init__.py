"""Shipped reference networks (package data: ``digits.npz``, ``thermocouple.npz``)."""
