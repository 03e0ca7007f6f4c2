"""Controller side: the PLC logic, transports (later), simulated PLC (later)."""
