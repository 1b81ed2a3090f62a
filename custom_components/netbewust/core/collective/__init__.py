"""Collective day-ahead planning.

The community's cheapest day within the transformer cap, and the limits that hold it.
"""
