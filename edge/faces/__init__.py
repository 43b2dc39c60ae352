"""Face watchlist on the camera: find a face on confirmed person tracks, keep each track's best, embed it within
a CPU budget and compare it with the site's watchlist. Only a match leaves the device; everything else is
discarded in memory. See docs/faces.md."""
