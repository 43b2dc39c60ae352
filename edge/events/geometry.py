"""Plane geometry in frame pixels: polygons (zones) and directed segments (lines)."""

from __future__ import annotations

import math

from kuzet.shared.geo import EARTH_RADIUS_M

Point = tuple[float, float]
# Slower than this on the ground, a direction of travel is the tracker's jitter, not news.
MIN_BEARING_SPEED_MPS = 0.3


def inside(point: Point, polygon: list[Point]) -> bool:
    """Even-odd ray casting; a point on an edge may fall either way, which is fine for people's feet."""
    x, y = point
    result = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
        j = i
    return result


def side(point: Point, a: Point, b: Point) -> float:
    """Positive when ``point`` is right of the directed line a->b as seen on screen (y points down)."""
    return (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0])


def crossing(previous: Point, current: Point, a: Point, b: Point) -> int:
    """+1 when the move previous->current crosses segment a-b from its left to its right, -1 right to left,
    0 when it does not cross the segment (touching an end point or staying on the line does not count)."""
    before, after = side(previous, a, b), side(current, a, b)
    if before == 0 or after == 0 or (before > 0) == (after > 0):
        return 0
    # The move must also straddle the line a-b within its ends, not its extension.
    s1, s2 = side(a, previous, current), side(b, previous, current)
    if (s1 > 0) == (s2 > 0) and s1 != 0 and s2 != 0:
        return 0
    return -1 if before > 0 else 1


def distance(p: Point, q: Point) -> float:
    return ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2) ** 0.5


class Ground:
    """The ground plane: a homography from frame pixels to metres on the ground, fitted (direct linear
    transform, least squares) to four or more image points whose positions on the ground are known."""

    def __init__(self, image: list[Point], world: list[Point], compass: bool = False):
        import numpy as np

        self.compass = compass  # world is metres (east, north): bearings are compass bearings

        rows = []
        for (x, y), (u, v) in zip(image, world, strict=True):
            rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
            rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
        _, singular, vt = np.linalg.svd(np.array(rows, float))
        if len(singular) < 8 or singular[7] < 1e-9 * singular[0]:
            raise ValueError("the ground points do not fix a plane: use 4 or more, no 3 of them on one line")
        self.h = vt[-1].reshape(3, 3) / vt[-1][-1]
        self.error_m = max(distance(self.to_ground(p), q) for p, q in zip(image, world, strict=True))

    def to_ground(self, point: Point) -> Point:
        x, y = point
        h = self.h
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        if w <= 0:
            raise ValueError(f"{point} is above the horizon of the ground plane")
        return ((h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w)

    def distance_m(self, p: Point, q: Point) -> float:
        return distance(self.to_ground(p), self.to_ground(q))

    def speed_kmh(self, foot: Point, velocity: tuple[float, float]) -> float:
        """The ground speed of a point on the ground (a foot) moving at ``velocity`` pixels per second."""
        ahead = (foot[0] + velocity[0] * 0.5, foot[1] + velocity[1] * 0.5)
        try:
            return self.distance_m(foot, ahead) / 0.5 * 3.6
        except ValueError:
            return 0.0

    def bearing_deg(self, foot: Point, velocity: tuple[float, float]) -> float | None:
        """The compass bearing (0 north, 90 east) of a foot moving at ``velocity`` pixels per second; None
        without map coordinates, standing still, or above the horizon."""
        if not self.compass:
            return None
        try:
            a = self.to_ground(foot)
            b = self.to_ground((foot[0] + velocity[0], foot[1] + velocity[1]))
        except ValueError:
            return None
        east, north = b[0] - a[0], b[1] - a[1]
        if math.hypot(east, north) < MIN_BEARING_SPEED_MPS:
            return None
        return math.degrees(math.atan2(east, north)) % 360.0


def east_north_m(points: list[Point]) -> list[Point]:
    """[lat, lon] points as metres east and north of the first (equirectangular: exact enough across a
    camera's view)."""
    lat0, lon0 = points[0]
    scale = math.pi / 180 * EARTH_RADIUS_M
    return [
        ((lon - lon0) * scale * math.cos(math.radians(lat0)), (lat - lat0) * scale) for lat, lon in points
    ]
