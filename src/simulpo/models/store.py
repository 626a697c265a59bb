"""Where installed models live, and how a model name on the command line finds its folder.

``simulpo models install NAME`` writes ``<models dir>/NAME/`` with a ``simulpo-model.json``
manifest; every option that takes a model path (``--model``, ``--speech-encoder``) also
takes an installed model's NAME. The models directory is ``$SIMULPO_MODELS_DIR`` when set,
else ``~/.cache/simulpo/models`` (one copy per user, shared by every clone and by CI runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from simulpo.errors import SimulpoError

MANIFEST = "simulpo-model.json"
ENV = "SIMULPO_MODELS_DIR"


def models_dir(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$SIMULPO_MODELS_DIR``, else ``~/.cache/simulpo/models``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    return Path.home() / ".cache" / "simulpo" / "models"


def read_manifest(folder: Path) -> dict | None:
    """The manifest of an installed model folder; None if there is none (or it is unreadable:
    an interrupted install, which ``install`` then redoes)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def installed(root: str | Path | None = None) -> dict[str, dict]:
    """The installed models under the models directory: name → manifest."""
    base = models_dir(root)
    if not base.is_dir():
        return {}
    found = {}
    for folder in sorted(base.iterdir()):
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest is not None and manifest.get("name") == folder.name:
            found[folder.name] = manifest
    return found


def resolve(path_or_name: str | Path, root: str | Path | None = None) -> Path:
    """The folder of a model given by path, or by the name of a registered model.

    An existing path wins; a registered name is looked up under the models directory and
    must be installed; anything else is returned as a path for the loader to judge.
    """
    from simulpo.models.registry import MODELS

    path = Path(path_or_name)
    if path.exists() or str(path_or_name) not in MODELS:
        return path
    folder = models_dir(root) / str(path_or_name)
    if read_manifest(folder) is None:
        raise SimulpoError(
            f"model {path_or_name!r} is not installed in {folder.parent}; run "
            f"`simulpo models install {path_or_name}` (or set {ENV} to where it is)"
        )
    return folder
