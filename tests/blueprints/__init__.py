"""Tests of the installer blueprints, run in Home Assistant's automation engine."""
