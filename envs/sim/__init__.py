"""Simulation core."""
