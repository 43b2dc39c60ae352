"""The face watchlist at central (docs/faces.md): entries for missing and wanted persons, enrolled from photos
whose embeddings are computed here, under the ``watchlist.manage`` permission, every action and view audited."""
