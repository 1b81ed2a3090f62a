"""The local grid guard, every meter update.

Per-device setpoints that keep the connection within its fuse and every limit in force.
"""
