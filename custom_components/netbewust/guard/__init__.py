"""The guard of one connection inside Home Assistant.

Meter entities in, device commands out.
"""
