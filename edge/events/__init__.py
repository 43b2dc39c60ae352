"""Events from tracks: zones and lines (``geometry``), their TOML sections (``config``), the rules that say what
holds in a frame (``rules``) and the engine that opens, updates and closes events (``engine.EventEngine``)."""
