"""The controller link: transports (OPC UA client, Modbus TCP) and the PLC link that writes the sets."""
