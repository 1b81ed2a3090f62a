"""A community membership inside Home Assistant.

Joining, the MQTT link, limits in and reports out.
"""
