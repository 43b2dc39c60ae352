"""The face models, run the same way wherever a face is processed: BlazeFace (LiteRT) finds faces, dlib's
ResNet turns one into a 128-d embedding. The camera (edge/faces) matches passers-by against the watchlist with
them; central (central/watchlist) embeds the enrolled photos with them, so both sides' embeddings agree."""
