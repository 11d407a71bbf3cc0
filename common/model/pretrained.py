"""The trained lifters the project ships: their registry, and verified paths to their files.

Every shipped model is one `PretrainedModel` literal in `_ENTRIES`: its name (``h36m_f27``), its file name in
``checkpoint/`` (``pretrained_h36m_f27.bin``, a project checkpoint as `common.model.checkpoints` writes it), the sha256
of that file, the model settings the file must hold, a one-line description and, for a model too large for the
repository, the URL it is downloaded from. `DEFAULT_MODEL` names the one that ``inference/video_to_3d.py`` uses when
no ``--checkpoint`` is given.

`resolve` turns a name (or file name) into the path of a verified file: the repository's ``checkpoint/`` folder
(`SHIPPED_DIR`) first, then the user's checkpoint folder; when neither has it and the entry has a URL, the file is
downloaded once into the user's folder (temporary name, then rename: an interrupted or failed download leaves
nothing). The file's sha256 must be the entry's, else a `UserError` names the file and both digests; a file is
hashed once per process (`_DIGESTS`). `resolve_checkpoint` is what the command lines call for a ``--evaluate`` /
``--checkpoint`` value: a registry name goes through `resolve`, anything else is a user checkpoint as before (and an
explicit path to a shipped file is verified too).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from common.core.errors import UserError, first_line
from common.core.files import atomic_write
from common.model.checkpoints import resolve_checkpoint_path

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "checkpoint"
"""The repository's ``checkpoint/`` folder, where the shipped files are tracked by git."""
H36M_NOTICE = "trained on Human3.6M, whose licence allows non-commercial research use only"
DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model. ``model_config`` holds the `ModelConfig` fields the file's stored ``model_config`` must
    have (a subset is fine); ``sha256`` is the lowercase hex digest of the file; ``url`` is None for a file tracked in
    the repository's ``checkpoint/`` folder."""

    name: str
    file_name: str
    sha256: str
    model_config: Mapping[str, object]
    description: str
    url: str | None = None
    notice: str = H36M_NOTICE

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_config", MappingProxyType(dict(self.model_config)))

    def summary(self) -> str:
        """``NAME: description (notice)``: the one line a command prints when it uses this model."""
        return f"{self.name}: {self.description} ({self.notice})"

    def config_mismatches(self, stored_config: Mapping) -> list[str]:
        """``field=value (entry: value)`` for every field of ``model_config`` the stored configuration contradicts."""
        return [f"{key}={stored_config.get(key)!r} (entry: {value!r})" for key, value in self.model_config.items()
                if stored_config.get(key) != value]


# The shipped models: one literal each (fill in sha256 with `sha256sum checkpoint/FILE` once the file exists).
_ENTRIES = (
    PretrainedModel(
        name="h36m_f27",
        file_name="pretrained_h36m_f27.bin",
        sha256="f0c07c664ae53af013d475a9a78319a50662359492a5ff3df10de288d02f42cd",
        model_config={"num_frames": 27, "num_joints": 17, "embed_dim": 64, "depth": 4, "spatial_mixer": "fc",
                      "temporal_mixer": "pool", "causal": False},
        description="default preset, 27 frames, 64 channels, depth 4; Human3.6M S1,S5-S8 with detector-shaped 2D "
                    "(docs/MODEL_ZOO.md)",
    ),
    PretrainedModel(
        name="h36m_f27_small",
        file_name="pretrained_h36m_f27_small.bin",
        sha256="047faf3c418fce46a1e8cc15f9b14415ba30cd374d6a44f39a33a54395eff850",
        model_config={"num_frames": 27, "num_joints": 17, "embed_dim": 32, "depth": 4, "spatial_mixer": "fc",
                      "temporal_mixer": "pool", "causal": False},
        description="default preset, 27 frames, 32 channels, depth 4; 20 minutes on one CPU thread, clean "
                    "ground-truth 2D: the per-minute recipe (docs/MODEL_ZOO.md)",
    ),
    PretrainedModel(
        name="h36m_f27_causal",
        file_name="pretrained_h36m_f27_causal.bin",
        sha256="c5bbe7e805dceafa94001201ca4a0afb98a87d9075e135bf300c52166ae1c6a5",
        model_config={"num_frames": 27, "num_joints": 17, "embed_dim": 64, "depth": 4, "spatial_mixer": "fc",
                      "temporal_mixer": "pool", "causal": True},
        description="causal (sees only past frames: live lifting without delay), otherwise as h36m_f27; one epoch "
                    "(docs/MODEL_ZOO.md)",
    ),
)
PRETRAINED: dict[str, PretrainedModel] = {entry.name: entry for entry in _ENTRIES}
"""The shipped models by name."""
DEFAULT_MODEL = "h36m_f27"
"""The model ``inference/video_to_3d.py`` uses without ``--checkpoint``."""
DEFAULT_LIVE_MODEL = "h36m_f27_causal"
"""The model ``inference/live.py`` uses without ``--checkpoint``: a causal one (the newest frame, no delay)."""

_DIGESTS: dict[tuple[str, int, int], str] = {}
"""sha256 of the files hashed in this process, by (resolved path, size, modification time in ns)."""


def find_entry(value: str | os.PathLike) -> PretrainedModel | None:
    """The entry whose name or file name is ``value`` (a bare name, without folder), else None."""
    text = os.fspath(value)
    if "/" in text or os.sep in text:
        return None
    return next((entry for entry in PRETRAINED.values() if text in (entry.name, entry.file_name)), None)


def get_entry(name: str) -> PretrainedModel:
    """The entry called ``name`` (or with that file name); a UserError listing the known names otherwise."""
    entry = find_entry(name)
    if entry is None:
        known = ", ".join(sorted(PRETRAINED)) or "none"
        raise UserError(f"{name}: not a shipped model; the known ones are: {known}")
    return entry


def sha256_file(path: str | os.PathLike) -> str:
    """The lowercase hex sha256 of a file (cached per process by path, size and modification time)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _check_digest(entry: PretrainedModel, actual: str, source: str, remedy: str) -> None:
    if not entry.sha256:
        raise UserError(f"{source}: the registry entry {entry.name} has no sha256 yet, so the file cannot be "
                        f"verified; this file's is {actual}: write it into common/model/pretrained.py")
    if actual != entry.sha256.lower():
        raise UserError(f"{source}: sha256 {actual} is not the expected {entry.sha256.lower()} of the shipped model "
                        f"{entry.name} (a damaged or replaced file; {remedy})")


def _remedy(entry: PretrainedModel) -> str:
    if entry.url:
        return f"delete it to download it again from {entry.url}"
    return f"restore it with `git checkout -- checkpoint/{entry.file_name}`"


def verify(path: str | os.PathLike, entry: PretrainedModel) -> Path:
    """``path`` when its sha256 is the entry's; a UserError naming the file and both digests otherwise."""
    path = Path(path)
    _check_digest(entry, sha256_file(path), str(path), _remedy(entry))
    return path


def download(entry: PretrainedModel, directory: str | os.PathLike,
             log: Callable[[str], object] | None = None) -> Path:
    """Download ``entry.url`` into ``directory / entry.file_name`` (temporary name, verified, then renamed); on any
    failure nothing is left behind and the UserError names the URL."""
    if not entry.url:
        raise UserError(f"{entry.name}: the shipped model has no download URL")
    destination = Path(directory) / entry.file_name
    if log is not None:
        log(f"downloading the model {entry.name} from {entry.url} to {destination}")
    failed = f"could not download the model {entry.name} from {entry.url}"
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{failed}: cannot create the folder {destination.parent} ({_reason(error)})") from None
    try:
        response = urllib.request.urlopen(entry.url, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310 (the registry's URL)
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise UserError(f"{failed} ({_reason(error)}); download it by hand to {destination}") from None

    digest = hashlib.sha256()

    def write(tmp: str) -> None:
        with response, open(tmp, "wb") as handle:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise UserError(f"{failed} ({_reason(error)}); download it by hand to {destination}") from None
                if not chunk:
                    break
                digest.update(chunk)
                handle.write(chunk)
        _check_digest(entry, digest.hexdigest(), f"{failed}: the download", "try again later")

    try:
        path = atomic_write(destination, write)
    finally:
        response.close()
    stat = path.resolve().stat()  # remember the verified digest: a later resolve does not hash the file again
    _DIGESTS[(str(path.resolve()), stat.st_size, stat.st_mtime_ns)] = digest.hexdigest()
    return path


def _reason(error: BaseException) -> str:
    """Why a download failed, in a few words (an HTTP status, the OS's reason, or the first line of the message)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", None)  # URLError: a text or the underlying OSError
    if isinstance(reason, BaseException):
        error = reason
    elif reason:
        return str(reason)
    return getattr(error, "strerror", None) or first_line(error)


def resolve(name: str, checkpoint_dir: str | os.PathLike | None = None, flag: str = "",
            log: Callable[[str], object] | None = None) -> Path:
    """The verified local file of the shipped model ``name`` (its name or file name): in `SHIPPED_DIR`, else in
    ``checkpoint_dir``, else downloaded into ``checkpoint_dir`` (`SHIPPED_DIR` when None) from the entry's URL."""
    entry = get_entry(name)
    folders = [SHIPPED_DIR] + ([Path(checkpoint_dir)] if checkpoint_dir is not None else [])
    for folder in folders:
        candidate = folder / entry.file_name
        if candidate.is_file():
            return verify(candidate, entry)
    subject = f"{flag} {name}" if flag else name
    if entry.url:
        return download(entry, folders[-1], log)
    elsewhere = f"; not in {folders[-1]} either" if len(folders) > 1 else ""
    raise UserError(f"{subject}: the shipped model {entry.name} is missing from {SHIPPED_DIR} (a clean clone has it: "
                    f"restore it with `git checkout -- checkpoint/{entry.file_name}`){elsewhere}")


def shipped_entry_of(path: str | os.PathLike) -> PretrainedModel | None:
    """The entry whose file ``path`` is (the file in `SHIPPED_DIR`, reached by any path), else None."""
    path = Path(path)
    entry = find_entry(path.name)
    shipped = SHIPPED_DIR / path.name
    if entry is None or not path.is_file() or not shipped.is_file():
        return None
    return entry if os.path.samefile(path, shipped) else None


def resolve_checkpoint(value: str, checkpoint_dir: str | os.PathLike | None, flag: str,
                       log: Callable[[str], object] | None = None) -> Path:
    """The file of a command line's checkpoint ``value``: a shipped model's name or file name gives its verified file
    (`resolve`); anything else is a user checkpoint, looked up in ``checkpoint_dir`` and then as a path
    (`resolve_checkpoint_path`), or taken as a path as it is when ``checkpoint_dir`` is None. A path that reaches a
    shipped file is verified too."""
    if find_entry(value) is not None:
        return resolve(value, checkpoint_dir, flag, log)
    path = Path(value) if checkpoint_dir is None else resolve_checkpoint_path(value, checkpoint_dir, flag)
    entry = shipped_entry_of(path)
    return path if entry is None else verify(path, entry)
