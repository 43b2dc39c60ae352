"""The street camera agent: configuration (``config``), the pipeline and its side threads (``agent``),
heartbeat figures (``health``), the on-demand live stream (``live``) and ``kuzet camera`` (``cli``)."""
