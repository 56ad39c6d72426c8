"""The local exchange: a process that speaks the Sei dex protocol subset on loopback."""
