"""``kuzet demo``: the whole system on one machine, every part a real process talking through a real broker."""
