"""Neighbourhood simulator: strategies side by side under one transformer (docs/simulator.md)."""
