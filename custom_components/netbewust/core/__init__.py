"""Netbewust engine: guard, planners and shared types. No Home Assistant imports.

Inside this package only relative imports are used, so it works both as
`custom_components.netbewust.core` (in Home Assistant) and as `netbewust_core`
(community server, simulator, benchmarks).
"""
