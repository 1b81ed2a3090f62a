"""Collective settlement: what each household measurably did, and what it is credited.

Plain computation over quarter-hour figures (docs/settlement.md): the missing-telemetry
rule, baselines with a gate closure, delivered flexibility, the coalition's saving and its
split (pro rata or Shapley), with totals that add up to the cent.
"""
