"""Simulated households: a plant model of devices and meter, and a closed-loop runner."""
