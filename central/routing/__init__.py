"""Routing events to patrol units: nearest available unit, escalation, intercept, manual assignment."""
