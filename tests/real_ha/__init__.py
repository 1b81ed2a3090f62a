"""Tests against a real Home Assistant process, started from the pinned release."""
