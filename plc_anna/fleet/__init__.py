"""``plc-anna fleet``: a Sparkplug B host application that keeps every plc-anna edge node of a group and historizes it."""
