"""Netbewust community server: membership, storage and MQTT for an energy cooperative."""
