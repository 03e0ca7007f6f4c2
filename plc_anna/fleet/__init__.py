"""``plc-anna fleet``: a Sparkplug B host application that follows every edge node of a group and historizes it."""
