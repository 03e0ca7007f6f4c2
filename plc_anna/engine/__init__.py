"""The real-time scan engine: each network's scan on its own thread, on absolute deadlines, apart from serving.

See :mod:`plc_anna.engine.host` for how a server runs it (in a process of its
own, or on threads of the server's process), :mod:`plc_anna.engine.task` for
the deadline loop, :mod:`plc_anna.engine.scan` for one network's scan and
:mod:`plc_anna.engine.jobs` for the off-scan work.
"""
