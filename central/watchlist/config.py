"""The ``[watchlist]`` section of central's configuration: sending the site's watchlist to the cameras."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from kuzet.shared.config import Section


class WatchlistSection(Section):
    # The site's watchlist signing key (Ed25519, PEM), made by ``kuzet provision site-init`` as
    # central/watchlist.key. Unset: central sends the cameras no watchlist (they hold none, and say so).
    signing_key: Path | None = None
    # How often central looks for something to send (an enrolment, edit, removal or expiry, a new camera, a
    # revoked one): a change reaches the cameras within this.
    check_s: Annotated[float, Field(gt=0, le=300)] = 5.0
