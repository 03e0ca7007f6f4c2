"""The OPC UA server of plc-anna, built on asyncua.

For now this package loads the information model (``opcua_models/plc_anna.xml``:
the AnalogNetwork, Layer, Compensator and ControllerLink types, the drift-state
enumeration and the drift event) into an asyncua server with
:func:`plc_anna.server.model.load_model`. The scan task that feeds the
compensator and publishes its state, history, security and persistence of the
compensator state are to come. asyncua is imported only by the functions that
need it, so importing this package stays light.
"""
