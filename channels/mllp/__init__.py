"""HL7 v2 over MLLP: sans-I/O framing, the listener (source) and the sender (destination)."""
