"""The simulated PLC: a controller stand-in running the ladder examples' correction block.

- :mod:`plc_anna.simulated_plc.program`: the PLC program (:class:`~plc_anna.simulated_plc.program.SimulatedPlc`),
  protocol independent;
- :mod:`plc_anna.simulated_plc.server`: the lifecycle and cycle task both servers share;
- its tags live where :mod:`plc_anna.contract.layout` says (the NodeIds of a CODESYS, TwinCAT or S7-1500
  server, the OpenPLC Modbus map): the layout generated PLC code uses too;
- :mod:`plc_anna.simulated_plc.opcua` and :mod:`plc_anna.simulated_plc.modbus`: the servers (imported on demand:
  each needs its protocol library).

``plc-anna plc-sim`` runs it; ``docs/simulated-plc.md`` describes it.
"""
