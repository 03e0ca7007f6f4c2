"""Corrections: optimal-transport gain/offset maps, bumpless transitions and baselines.

Pure numpy/scipy/POT: nothing here knows of servers, PLCs or the command line.
"""
