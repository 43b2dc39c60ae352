"""Plane geometry in frame pixels: polygons (zones) and directed segments (lines)."""

from __future__ import annotations

Point = tuple[float, float]


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
