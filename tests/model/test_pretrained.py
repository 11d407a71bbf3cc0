"""common/model/pretrained.py: the registry of shipped models, sha256 verification, file:// downloads.

The tests build their own registry (tiny checkpoints written by `save_checkpoint`) and their own ``checkpoint/``
folder; none needs the real shipped file (the last test checks it only where it exists).
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

from common.core.errors import UserError
from common.model import pretrained
from common.model.checkpoints import load_checkpoint, save_checkpoint
from common.model.config import ModelConfig
from common.model.metaformer import build_model
from common.model.pretrained import PretrainedModel

TINY = {"num_frames": 27, "embed_dim": 16, "depth": 1}


def tiny_checkpoint(path: Path) -> tuple[Path, str]:
    """A project checkpoint of a tiny model and its sha256 (computed here, independently of the module)."""
    config = ModelConfig(**TINY)
    save_checkpoint(path, epoch=3, lr=1e-3, model=build_model(config), optimizer=None, model_config=config.to_dict(),
                    best_val=None, loader_state=None)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def entry(sha256: str, name: str = "tiny_f27", url: str | None = None) -> PretrainedModel:
    return PretrainedModel(name=name, file_name=f"pretrained_{name}.bin", sha256=sha256, model_config=TINY,
                           description="a tiny test model", url=url, notice="test data only")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """An empty shipped folder ``tmp/shipped`` and an empty registry (fill it with `install`)."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(pretrained, "PRETRAINED", {})
    monkeypatch.setattr(pretrained, "_DIGESTS", {})
    return shipped


def install(*entries: PretrainedModel) -> None:
    pretrained.PRETRAINED.update({e.name: e for e in entries})


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_lookup_by_name_or_file_name_and_unknown_names(registry):
    install(entry("0" * 64), entry("1" * 64, name="other_f81"))
    assert pretrained.get_entry("tiny_f27").file_name == "pretrained_tiny_f27.bin"
    assert pretrained.get_entry("pretrained_other_f81.bin").name == "other_f81"
    with pytest.raises(UserError, match=r"^h36m_f999: not a shipped model; the known ones are: other_f81, tiny_f27$"):
        pretrained.get_entry("h36m_f999")
    assert pretrained.find_entry("somewhere/pretrained_tiny_f27.bin") is None  # a path is a user file
    assert pretrained.find_entry("best_epoch.bin") is None
    pretrained.PRETRAINED.clear()
    with pytest.raises(UserError, match="known ones are: none"):
        pretrained.get_entry("tiny_f27")


def test_entries_are_frozen_one_literal_each():
    item = entry("")
    with pytest.raises(AttributeError):
        item.sha256 = "x"
    with pytest.raises(TypeError):
        item.model_config["depth"] = 9
    assert item.summary() == "tiny_f27: a tiny test model (test data only)"
    assert item.config_mismatches({**ModelConfig(**TINY).to_dict()}) == []
    assert item.config_mismatches({**ModelConfig(**TINY).to_dict(), "depth": 2}) == ["depth=2 (entry: 1)"]


def test_shipped_file_is_verified_and_loads(registry, tmp_path):
    path, digest = tiny_checkpoint(registry / "pretrained_tiny_f27.bin")
    install(entry(digest))
    for name in ("tiny_f27", "pretrained_tiny_f27.bin"):
        assert pretrained.resolve(name, tmp_path / "user") == path
    stored = load_checkpoint(path)
    assert pretrained.get_entry("tiny_f27").config_mismatches(stored["model_config"]) == []


def test_file_in_the_users_checkpoint_dir_is_verified(registry, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    path, digest = tiny_checkpoint(user / "pretrained_tiny_f27.bin")
    install(entry(digest))
    assert pretrained.resolve("tiny_f27", user) == path
    install(entry("f" * 64))
    with pytest.raises(UserError, match=re.escape(f"{path}: sha256 {digest} is not the expected {'f' * 64}")):
        pretrained.resolve("tiny_f27", user)


def test_sha256_mismatch_names_file_and_both_digests(registry):
    path, digest = tiny_checkpoint(registry / "pretrained_tiny_f27.bin")
    install(entry("ab" * 32))
    with pytest.raises(UserError) as error:
        pretrained.resolve("tiny_f27")
    message = str(error.value)
    assert message.startswith(f"{path}: sha256 {digest} is not the expected {'ab' * 32} of the shipped model tiny_f27")
    assert "git checkout -- checkpoint/pretrained_tiny_f27.bin" in message and "\n" not in message
    # an explicit path that reaches the shipped file is verified as well; a copy elsewhere is a user checkpoint
    with pytest.raises(UserError, match="sha256"):
        pretrained.resolve_checkpoint(str(path), None, "--checkpoint")
    copy = shutil.copy(path, registry.parent / "pretrained_tiny_f27.bin")
    assert pretrained.resolve_checkpoint(str(copy), None, "--checkpoint") == Path(copy)


def test_entry_without_sha256_tells_the_digest_and_refuses(registry):
    _, digest = tiny_checkpoint(registry / "pretrained_tiny_f27.bin")
    install(entry(""))
    with pytest.raises(UserError, match=f"registry entry tiny_f27 has no sha256 yet.*this file's is {digest}"):
        pretrained.resolve("tiny_f27")


def test_missing_shipped_file_is_a_clear_error(registry, tmp_path):
    install(entry("0" * 64))
    with pytest.raises(UserError) as error:
        pretrained.resolve("tiny_f27", tmp_path / "user", "--evaluate")
    assert str(error.value) == (
        f"--evaluate tiny_f27: the shipped model tiny_f27 is missing from {registry} (a clean clone has it: restore it "
        f"with `git checkout -- checkpoint/pretrained_tiny_f27.bin`); not in {tmp_path / 'user'} either")


def test_verification_is_cached_per_process_until_the_file_changes(registry, monkeypatch):
    path, digest = tiny_checkpoint(registry / "pretrained_tiny_f27.bin")
    install(entry(digest))
    pretrained.resolve("tiny_f27")
    real_sha256 = hashlib.sha256
    calls = []
    monkeypatch.setattr(pretrained.hashlib, "sha256", lambda *a: calls.append(1) or real_sha256(*a))
    for _ in range(3):
        pretrained.resolve("tiny_f27")
    assert calls == []
    with open(path, "ab") as handle:  # replaced on disk: hashed again, and refused
        handle.write(b"x")
    with pytest.raises(UserError, match="is not the expected"):
        pretrained.resolve("tiny_f27")
    assert calls == [1]


def test_file_url_is_downloaded_once_verified_and_loaded(registry, tmp_path, monkeypatch):
    source, digest = tiny_checkpoint(tmp_path / "server.bin")
    install(entry(digest, url=source.as_uri()))
    user = tmp_path / "user" / "nested"  # created on download
    lines = []
    path = pretrained.resolve("tiny_f27", user, log=lines.append)
    assert path == user / "pretrained_tiny_f27.bin" and path.read_bytes() == source.read_bytes()
    assert lines == [f"downloading the model tiny_f27 from {source.as_uri()} to {path}"]
    assert listing(user) == ["pretrained_tiny_f27.bin"] and listing(registry) == []
    assert load_checkpoint(path)["epoch"] == 3

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded twice")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(pretrained.hashlib, "sha256", no_network)  # verified while downloading: not hashed again
    assert pretrained.resolve("tiny_f27", user) == path


def test_download_with_a_wrong_digest_leaves_nothing(registry, tmp_path):
    source, digest = tiny_checkpoint(tmp_path / "server.bin")
    install(entry("cd" * 32, url=source.as_uri()))
    user = tmp_path / "user"
    with pytest.raises(UserError) as error:
        pretrained.resolve("tiny_f27", user)
    assert str(error.value).startswith(f"could not download the model tiny_f27 from {source.as_uri()}: the download: "
                                       f"sha256 {digest} is not the expected {'cd' * 32}")
    assert listing(user) == []


def test_download_from_a_missing_url_names_it(registry, tmp_path):
    url = (tmp_path / "gone.bin").as_uri()
    install(entry("0" * 64, url=url))
    with pytest.raises(UserError, match=re.escape(f"could not download the model tiny_f27 from {url} (No such file or "
                                                  "directory); download it by hand to ")):
        pretrained.resolve("tiny_f27", tmp_path / "user")
    assert listing(tmp_path / "user") == []


class BrokenResponse(io.BytesIO):
    """A download that delivers its first megabyte and then loses the connection."""

    def read(self, size=-1):
        if self.tell() > 0:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(size)


def test_interrupted_download_leaves_nothing(registry, tmp_path, monkeypatch):
    install(entry("0" * 64, url="https://example.invalid/pretrained_tiny_f27.bin"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: BrokenResponse(b"\0" * (3 << 20)))
    user = tmp_path / "user"
    with pytest.raises(UserError, match=r"from https://example.invalid/pretrained_tiny_f27.bin \(Connection reset by "
                                        r"peer\); download it by hand"):
        pretrained.resolve("tiny_f27", user)
    assert listing(user) == []  # neither the file nor a temporary one


def test_user_checkpoints_resolve_as_before(registry, tmp_path):
    install(entry("0" * 64))
    user = tmp_path / "user"
    user.mkdir()
    mine, _ = tiny_checkpoint(user / "best_epoch.bin")
    assert pretrained.resolve_checkpoint("best_epoch.bin", user, "--evaluate") == mine
    assert pretrained.resolve_checkpoint(str(mine), tmp_path, "--evaluate") == mine
    assert pretrained.resolve_checkpoint("anything.bin", None, "--checkpoint") == Path("anything.bin")
    with pytest.raises(UserError, match="--evaluate nope.bin: checkpoint not found"):
        pretrained.resolve_checkpoint("nope.bin", user, "--evaluate")


def test_the_real_registry_is_well_formed():
    """The shipped entries: unique names, file names that git tracks, digests of the right form; the file itself is
    checked where it exists (its sha256 and its stored model configuration)."""
    entries = pretrained._ENTRIES
    assert len({e.name for e in entries}) == len(entries) == len(pretrained.PRETRAINED)
    assert pretrained.DEFAULT_MODEL in pretrained.PRETRAINED
    for item in entries:
        assert re.fullmatch(r"pretrained_[a-z0-9_]+\.bin", item.file_name), item
        assert re.fullmatch(r"([0-9a-f]{64})?", item.sha256), item
        ModelConfig(**dict(item.model_config))  # known fields with valid values
        if shutil.which("git") and (ROOT / ".git").exists():
            ignored = subprocess.run(["git", "check-ignore", "-q", f"checkpoint/{item.file_name}"], cwd=ROOT)
            assert ignored.returncode == 1, f"git ignores checkpoint/{item.file_name}; see .gitignore"
        path = pretrained.SHIPPED_DIR / item.file_name
        if item.url is None and path.is_file() and item.sha256:
            assert pretrained.verify(path, item) == path
            assert item.config_mismatches(load_checkpoint(path)["model_config"]) == []
