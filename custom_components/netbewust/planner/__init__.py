"""The household planner inside Home Assistant.

Price and forecast sources, the plan's entities, the solver process.
"""
