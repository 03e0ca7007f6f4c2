"""Networks from other tools: :mod:`plc_anna.importers.onnx` reads an ONNX model (``plc-anna import``).

Each importer produces a :class:`~plc_anna.device.network.Network` through
:func:`~plc_anna.device.network.network_from_arrays`, so an imported network is checked exactly as a
``.npz`` file is (``docs/network-format.md``). Their libraries sit in extras and are imported only here.
"""
