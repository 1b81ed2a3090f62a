"""Tests of the demo Home Assistant configuration that scripts/run-ha starts."""
