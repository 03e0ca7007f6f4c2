"""Reproducible training scripts for the shipped reference networks."""
