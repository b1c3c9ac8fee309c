"""Build-once folders keyed by a hash of their settings, safe when several cells build the same one at once.

A folder is built under a temporary name and renamed into place with a DONE marker inside, so a reader
never sees half a build; a folder left without the marker (a killed build) is rebuilt.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from filelock import FileLock

DONE = "DONE"


def stable_hash(settings) -> str:
    """A short hash of plain settings that does not depend on dict order or the process."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached(root: Path, kind: str, settings: dict, build: Callable[[Path], None]) -> Path:
    """The folder for `settings` under root/kind, calling build(tmp_folder) the first time."""
    final = Path(root) / kind / stable_hash(settings)
    if (final / DONE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{final}.lock"):
        if (final / DONE).exists():
            return final
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{final.name}.tmp-"))
        try:
            build(tmp)
            (tmp / "settings.json").write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))
            (tmp / DONE).touch()
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
