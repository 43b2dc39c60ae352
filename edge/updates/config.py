"""The ``[updates]`` section every device's configuration has (see ``edge.updates.device``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from kuzet.shared.config import Section


class UpdatesSection(Section):
    """Signed updates (``install_update``, ``rollback_update``). Both keys unset: the device takes none.

    The site's key is set here, never by a command; changes to this section take effect at the next start.
    """

    public_key: Path | None = None  # the site's update.pub, shipped in the device's bundle
    install_dir: Path | None = None  # one folder per kind of update, each with versions/, current, previous
    max_bundle_mb: Annotated[float, Field(gt=0, le=512)] = 256.0  # a larger download is refused
    download_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
