"""Connectors: one per platform, all speaking the records of `vsc.connectors.base`."""
