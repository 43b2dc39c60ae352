"""Distances on the Earth for routing: great-circle distance, bearing, and an estimated travel distance.

Streets are not straight lines: the travel estimate is the great-circle distance times a detour factor
(about 1.3 for a city grid), which ranks units the same way a road router would in most cases at a
fraction of the cost and with no map data on the server.
"""

from __future__ import annotations

import numpy as np

from kuzet.shared.geo import EARTH_RADIUS_M, bearing_deg, haversine_m, offset

__all__ = ["bearing_deg", "haversine_m", "haversine_many_m", "offset", "travel_m"]


def travel_m(lat1: float, lon1: float, lat2: float, lon2: float, detour_factor: float) -> float:
    """Estimated distance to drive or walk from one point to another."""
    return haversine_m(lat1, lon1, lat2, lon2) * detour_factor


def haversine_many_m(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Great-circle distances in metres from one point to many (vectorised: 500 units in microseconds)."""
    p1, p2 = np.radians(lat), np.radians(lats)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
