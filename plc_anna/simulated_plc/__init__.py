"""The simulated PLC: a controller stand-in running the ladder examples' correction block.

- :mod:`plc_anna.simulated_plc.program`: the PLC program (:class:`~plc_anna.simulated_plc.program.SimulatedPlc`),
  protocol independent, and the cycle task both servers share;
- :mod:`plc_anna.simulated_plc.layout`: the CODESYS-style OPC UA NodeIds and the OpenPLC Modbus map;
- :mod:`plc_anna.simulated_plc.opcua` and :mod:`plc_anna.simulated_plc.modbus`: the servers (imported on demand:
  each needs its protocol library).

``plc-anna plc-sim`` runs it; ``docs/simulated-plc.md`` describes it.
"""
