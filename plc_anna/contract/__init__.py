"""The PLC contract: what plc-anna and a PLC agree on.

One package that every side builds on: the tag map (which tags, where, of
which type), the correction block's reference logic (``FB_AnnaCorrection``,
cycle for cycle), the counters (UDINT, wrapping, 0 meaning "no set yet") and
the ramp step (REAL arithmetic, never overshooting). The device's PLC-observed
backend, the PLC link, commissioning, the simulated PLC and generated PLC code
all take them from here, so no two of them can disagree. Nothing here imports
a protocol library.
"""
