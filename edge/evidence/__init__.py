"""Evidence for events: snapshot JPEGs with boxes drawn (``snapshot``) and clips with pre- and post-roll
(``clips.ClipRecorder`` fed by a ring buffer of recent frames)."""
