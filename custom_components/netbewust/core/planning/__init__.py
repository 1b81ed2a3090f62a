"""The household planner.

Prices, forecasts and limits in, an exact day plan per device out.
"""
