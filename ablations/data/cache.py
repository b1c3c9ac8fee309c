"""Build-once folders keyed by a hash of their settings, safe when several cells build the same one at once.

A folder is built under a temporary name and renamed into place with a DONE manifest inside (every file's size
and SHA-256), so a reader never sees half a build; a folder left without the manifest (a killed build) is
rebuilt, and one whose files no longer match it (cut short, deleted, a byte changed in place) is rebuilt where
that is safe, else refused by name. Checking the digests reads the cache once per use: seconds at paper scale,
against a cell's hours.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from filelock import FileLock

from ablations.config import ConfigError

log = logging.getLogger(__name__)
DONE = "DONE"


def stable_hash(settings) -> str:
    """A short hash of plain settings that does not depend on dict order or the process."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached(root: Path, kind: str, settings: dict, build: Callable[[Path], None], rebuild_damaged: bool = True) -> Path:
    """The folder for `settings` under root/kind, calling build(tmp_folder) the first time. rebuild_damaged=False
    for a folder other results depend on exactly (a trained tokenizer): damage is then an error naming the file."""
    final = Path(root) / kind / stable_hash(settings)
    if _intact(final, rebuild_damaged):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{final}.lock"):
        if _intact(final, rebuild_damaged):
            return final
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{final.name}.tmp-"))
        try:
            build(tmp)
            (tmp / "settings.json").write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))
            (tmp / DONE).write_text(json.dumps(_manifest(tmp), indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _manifest(folder: Path) -> dict[str, list]:
    return {str(p.relative_to(folder)): _fingerprint(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _fingerprint(path: Path) -> list:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return [path.stat().st_size, digest.hexdigest()]


def _matches(path: Path, recorded) -> bool:
    """Manifests written before digests were recorded hold the size alone."""
    if not path.is_file():
        return False
    if isinstance(recorded, int):
        return path.stat().st_size == recorded
    return path.stat().st_size == recorded[0] and _fingerprint(path) == recorded


def _intact(folder: Path, rebuild_damaged: bool) -> bool:
    """Built and unchanged since; a damaged folder is rebuilt (False) or refused. Builds are renamed into place
    with their manifest inside, so a folder in place without a readable one was damaged, not cut short."""
    if not folder.exists():
        return False
    try:
        manifest = json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        manifest = {DONE: -1}
    damaged = sorted(name for name, recorded in manifest.items() if not _matches(folder / name, recorded))
    if not damaged:
        return True
    if not rebuild_damaged:
        raise ConfigError(f"{folder / damaged[0]}: missing or changed since the cache was built; delete {folder} to "
                          f"rebuild it (cells trained with the old one then differ from new ones)")
    log.warning("%s: missing or changed since it was built (%s): rebuilt", folder, ", ".join(damaged))
    return False
