"""The camera's vision pipeline: frame sources, motion gating, int8 detection and multi-object tracking."""
