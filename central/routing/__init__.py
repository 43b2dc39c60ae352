"""Routing events to patrol units: nearest available unit, escalation, intercept, manual assignment.

``lifecycle`` (the dispatch state machine, as data), ``planner`` (who goes), ``repository`` (all of routing's
SQL), ``worker`` (queue, transactions, delivery after commit, deadlines), ``dispatcher`` (carrying decisions
out) and ``service`` (``RoutingService``, reached through ``central.operations``)."""
