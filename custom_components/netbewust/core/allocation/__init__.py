"""Live allocation, every few seconds.

The transformer cap (or a DSO signal) split into household limits.
"""
