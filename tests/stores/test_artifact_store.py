"""The content-addressed artifact store: the contract on local disk and on fsspec
memory://, plus what only a real local disk can show (links, temp files, disk
full, fsync order, memory use)."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import (
    ArtifactCorrupted,
    ArtifactStoreFull,
    ConfigError,
    InvalidArtifactKey,
)
from lockgate.ports.artifacts import ArtifactRef
from lockgate.stores.artifacts import ContentAddressedStore, open_artifact_store
from lockgate.stores.artifacts.blobs import LocalBlobs
from lockgate.stores.artifacts.fsspec_blobs import FsspecBlobs
from lockgate.testing.artifact_contract import LARGE, ArtifactStoreContract

# --- the contract on both backends ---------------------------------------------


class LocalTamper:
    def __init__(self, blobs: LocalBlobs) -> None:
        self._blobs = blobs

    def _path(self, sha256: str) -> Path:
        path = Path(self._blobs.describe(sha256))
        path.chmod(0o644)
        return path

    def flip_byte(self, sha256: str) -> None:
        path = self._path(sha256)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(data)

    def truncate(self, sha256: str) -> None:
        path = self._path(sha256)
        os.truncate(path, path.stat().st_size // 2)

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink()


class MemoryTamper:
    def __init__(self, blobs: FsspecBlobs) -> None:
        import fsspec

        self._fs = fsspec.filesystem("memory")
        self._blobs = blobs

    def flip_byte(self, sha256: str) -> None:
        url = self._blobs.describe(sha256)
        data = bytearray(self._fs.cat_file(url))
        data[len(data) // 2] ^= 0xFF
        self._fs.pipe_file(url, bytes(data))

    def truncate(self, sha256: str) -> None:
        url = self._blobs.describe(sha256)
        data = self._fs.cat_file(url)
        self._fs.pipe_file(url, data[: len(data) // 2])

    def delete(self, sha256: str) -> None:
        self._fs.rm_file(self._blobs.describe(sha256))


class TestLocalContract(ArtifactStoreContract):
    @pytest.fixture
    def blobs(self, tmp_path: Path) -> LocalBlobs:
        return LocalBlobs(tmp_path / "artifacts")

    @pytest.fixture
    def store(self, blobs: LocalBlobs) -> ContentAddressedStore:
        return ContentAddressedStore(blobs)

    @pytest.fixture
    def tamper(self, blobs: LocalBlobs) -> LocalTamper:
        return LocalTamper(blobs)


class TestMemoryContract(ArtifactStoreContract):
    @pytest.fixture
    def blobs(self) -> Iterator[FsspecBlobs]:
        import fsspec

        name = f"lockgate-test-{uuid.uuid4().hex}"
        yield FsspecBlobs(f"memory://{name}")
        fs = fsspec.filesystem("memory")
        if fs.exists(f"/{name}"):
            fs.rm(f"/{name}", recursive=True)

    @pytest.fixture
    def store(self, blobs: FsspecBlobs) -> ContentAddressedStore:
        return ContentAddressedStore(blobs)

    @pytest.fixture
    def tamper(self, blobs: FsspecBlobs) -> MemoryTamper:
        return MemoryTamper(blobs)


# --- local disk only -------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> tuple[ContentAddressedStore, LocalBlobs]:
    blobs = LocalBlobs(tmp_path / "artifacts")
    return ContentAddressedStore(blobs), blobs


def files_under(root: Path) -> list[str]:
    """Every non-directory entry below `root`, relative, sorted."""
    found = []
    for directory, _, names in os.walk(root):
        found += [str((Path(directory) / name).relative_to(root)) for name in names]
    return sorted(found)


def test_blob_layout_is_sha256_shard_hash_and_read_only(local, tmp_path: Path) -> None:
    store, _ = local
    ref = store.put(b"w" * LARGE)
    path = tmp_path / "artifacts" / "sha256" / ref.sha256[:2] / ref.sha256
    assert files_under(tmp_path / "artifacts") == [os.path.relpath(path, tmp_path / "artifacts")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    if os.geteuid() != 0:  # root ignores permission bits
        with pytest.raises(PermissionError):
            path.open("r+b")


def test_planted_symlink_is_never_followed_even_to_the_right_bytes(local, tmp_path: Path) -> None:
    store, blobs = local
    ref = store.put(b"s" * LARGE)
    path = Path(blobs.describe(ref.sha256))
    outside = tmp_path / "outside"
    outside.write_bytes(path.read_bytes())  # following the link would verify fine
    path.unlink()
    path.symlink_to(outside)
    for read in (lambda: store.get(ref), lambda: store.read_bytes(ref)):
        with pytest.raises(ArtifactCorrupted, match="symlink"):
            read()
    with pytest.raises(ArtifactCorrupted, match=f"sha256 mismatch for artifact {ref.uri}"):
        store.verify(ref.sha256)
    assert store.exists(ref.sha256)
    assert list(store.blobs()) == [ref.sha256]  # listed, so `verify` over blobs() reports it
    # Re-running the producer replaces the link, not the file it points to.
    store.put(b"s" * LARGE)
    assert not path.is_symlink()
    assert store.get(ref) == b"s" * LARGE
    assert outside.read_bytes() == b"s" * LARGE


def test_planted_symlinked_shard_directory_is_not_followed(local, tmp_path: Path) -> None:
    store, blobs = local
    ref = store.put(b"d" * LARGE)
    shard = Path(blobs.describe(ref.sha256)).parent
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(shard, elsewhere)
    shutil.rmtree(shard)
    shard.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ArtifactCorrupted):
        store.get(ref)
    store.put(b"d" * LARGE)  # writing repairs the layout instead of writing through the link
    assert not shard.is_symlink()
    assert store.get(ref) == b"d" * LARGE


def test_sweep_removes_only_old_temp_files(local, tmp_path: Path) -> None:
    store, _ = local
    ref = store.put(b"k" * LARGE)
    base = tmp_path / "artifacts" / "sha256"
    shard = base / ref.sha256[:2]
    old_top, old_shard, fresh = base / ".tmp-old1", shard / ".tmp-old2", shard / ".tmp-new"
    unrelated = base / "notes"
    long_ago = time.time() - 7200
    for path in (old_top, old_shard, fresh, unrelated):
        path.write_bytes(b"partial")
    for path in (old_top, old_shard, unrelated):
        os.utime(path, (long_ago, long_ago))
    assert store.sweep_temp(3600) == 2
    assert not old_top.exists() and not old_shard.exists()
    assert fresh.exists() and unrelated.exists()
    store.verify(ref.sha256)
    assert store.sweep_temp(0) == 1
    assert not fresh.exists()
    assert open_artifact_store(str(tmp_path / "never-written")).sweep_temp(0) == 0


def test_ids_are_rejected_before_the_backend_is_touched(tmp_path: Path) -> None:
    calls: list[str] = []

    class Recording(LocalBlobs):
        def __getattribute__(self, name: str) -> Any:
            attribute = super().__getattribute__(name)
            if name.startswith("_") or not callable(attribute):
                return attribute

            def recorded(*args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                return attribute(*args, **kwargs)

            return recorded

    store = ContentAddressedStore(Recording(tmp_path / "artifacts"))
    good = store.put(b"g" * LARGE)
    calls.clear()
    for bad in ("../../etc/passwd", "sha256:" + "0" * 63, good.sha256.upper()):
        forged = ArtifactRef(bad, "bytes", 1, "builtins.bytes")
        for call, argument in (
            (store.exists, bad),
            (store.verify, bad),
            (store.get, forged),
            (store.read_bytes, forged),
        ):
            with pytest.raises(InvalidArtifactKey):
                call(argument)  # type: ignore[operator]
    assert calls == []


def test_crashed_writers_leave_no_torn_blob(tmp_path: Path) -> None:
    """I3 under kill -9: every visible blob hashes to its name; a sweep clears the rest."""
    root = tmp_path / "artifacts"
    writer = textwrap.dedent(
        """
        import os, sys
        from lockgate.stores.artifacts import open_artifact_store
        store = open_artifact_store(sys.argv[1])
        print("ready", flush=True)
        n = 0
        while True:
            store.put(os.urandom(1 << 22))
            n += 1
        """
    )
    for seed in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", writer, str(root)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        time.sleep(0.2 + 0.15 * seed)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
    store = open_artifact_store(str(root))
    hashes = list(store.blobs())
    assert hashes, "the writers should have published something before being killed"
    for sha256 in hashes:
        store.verify(sha256)
    store.sweep_temp(0)
    assert [name for name in files_under(root) if ".tmp-" in name] == []


def test_big_arrays_are_never_held_twice_in_memory(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    store = open_artifact_store(str(tmp_path / "artifacts"))
    array = np.random.default_rng(0).random(8 << 20)  # 64 MiB
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        ref = store.put(array)
        put_peak = tracemalloc.get_traced_memory()[1] - before
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        back = store.get(ref)
        get_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert np.array_equal(back, array)
    assert put_peak < array.nbytes // 2, f"put peaked at {put_peak} bytes"
    assert get_peak < array.nbytes * 1.25, f"get peaked at {get_peak} bytes"


def test_storing_plain_values_imports_no_heavy_packages(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from lockgate.stores.artifacts import open_artifact_store
        store = open_artifact_store(sys.argv[1])
        for value in ({"a": [1, 2.5]}, b"x" * 40000, "text"):
            store.get(store.put(value))
        heavy = ("numpy", "pandas", "pyarrow", "cloudpickle", "fsspec")
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "a")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == []


def test_publish_order_is_fsync_rename_then_fsync_directory(tmp_path: Path) -> None:
    """F12: what strace sees is fsync(tmp) -> rename -> fsync(dir)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    root, trace = tmp_path / "artifacts", tmp_path / "trace"
    script = (
        "import sys; from lockgate.stores.artifacts import open_artifact_store; "
        "print(open_artifact_store(sys.argv[1]).put(b'o' * (1 << 20)).sha256)"
    )
    syscalls = "trace=openat,fsync,fdatasync,rename,renameat,renameat2"
    command = [strace, "-f", "-y", "-s", "256", "-o", str(trace), "-e", syscalls]
    result = subprocess.run(
        [*command, sys.executable, "-c", script, str(root)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    sha256 = result.stdout.strip()
    lines = trace.read_text().splitlines()

    def first(predicate: Any, start: int = 0) -> int:
        return next(i for i in range(start, len(lines)) if predicate(lines[i]))

    fsync_temp = first(lambda line: "fsync(" in line and "/.tmp-" in line)
    rename = first(lambda line: "rename" in line and f'"{sha256}"' in line)
    fsync_dir = first(
        lambda line: "fsync(" in line and line.rstrip().endswith(f"/sha256/{sha256[:2]}>) = 0"),
        rename,
    )
    assert fsync_temp < rename < fsync_dir


# --- disk full ---------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (RELIABILITY F5); skipped where mounting is not allowed."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; test_file_size_limit covers the no-root case")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_disk_full_leaves_nothing_visible_and_a_retry_succeeds(small_disk: Path) -> None:
    np = pytest.importorskip("numpy")
    root = small_disk / "artifacts"
    store = open_artifact_store(str(root))
    what = "output of node 'train' (run r-9)"
    for value, size in ((b"f" * (2 << 20), 2 << 20), (np.ones(2 << 18), None)):
        with pytest.raises(ArtifactStoreFull) as caught:
            store.put(value, what=what)
        message = str(caught.value)
        assert message.startswith(f"no space left writing {what} (~")
        assert size is None or f"(~{size} bytes)" in message
        assert f"at {root};" in message and message.endswith("then resume the run")
        assert files_under(small_disk) == []  # no temp file, no partial blob
        assert list(store.blobs()) == []
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    ref = store.put(b"f" * (2 << 20), what=what)
    store.verify(ref.sha256)
    assert list(store.blobs()) == [ref.sha256]


def test_file_size_limit_fails_like_a_full_disk(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes fail for real (EFBIG) without needing root."""
    pytest.importorskip("numpy")
    root = tmp_path / "artifacts"
    script = textwrap.dedent(
        """
        import json, resource, sys
        import numpy as np
        from lockgate.errors import ArtifactStoreFull
        from lockgate.stores.artifacts import open_artifact_store
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
        store = open_artifact_store(sys.argv[1])
        out = {"fits": store.put(b"s" * 100_000).sha256, "errors": []}
        for value in (b"b" * (2 << 20), np.zeros(2 << 18)):
            try:
                store.put(value, what="big output")
            except ArtifactStoreFull as exc:
                out["errors"].append(str(exc))
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["errors"]) == 2
    assert all(e.startswith("no space left writing big output (~") for e in out["errors"])
    assert files_under(root) == [f"sha256/{out['fits'][:2]}/{out['fits']}"]


# --- exactness -----------------------------------------------------------------------


def identical(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down and the same dict order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(identical, a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def blob_store(tmp_path_factory: pytest.TempPathFactory) -> ContentAddressedStore:
    """Every payload becomes a blob, so the property covers the disk path."""
    return open_artifact_store(str(tmp_path_factory.mktemp("blobs")), inline_limit=0)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_json_values_round_trip_exactly_and_hash_stably(
    blob_store: ContentAddressedStore, value: Any
) -> None:
    ref = blob_store.put(value)
    assert ref.serializer == "json"
    assert identical(blob_store.get(ref), value)
    assert blob_store.put(copy.deepcopy(value)).sha256 == ref.sha256
    assert blob_store.put(json.loads(json.dumps(value))).sha256 == ref.sha256


def test_dict_order_and_number_type_are_part_of_the_value(blob_store) -> None:
    hashes = {blob_store.put(v).sha256 for v in ({"a": 1, "b": 2}, {"b": 2, "a": 1})}
    assert len(hashes) == 2
    assert len({blob_store.put(v).sha256 for v in (1, 1.0, True)}) == 3


@pytest.mark.parametrize(
    "value",
    [
        "lone surrogate \ud800",
        10**5000,
        [1, (2, 3)],
        {1: "int key"},
        {"nan": float("nan")},
    ],
    ids=["surrogate", "huge-int", "nested-tuple", "int-key", "nan"],
)
def test_values_json_would_change_still_round_trip(blob_store, value: Any) -> None:
    ref = blob_store.put(value)
    assert ref.serializer == "pickle"
    back = blob_store.get(ref, trusted=True)
    assert type(back) is type(value)
    assert pickle.dumps(back) == pickle.dumps(value)  # also for NaN, which != itself


def test_shared_and_cyclic_lists_keep_their_shape(blob_store) -> None:
    shared = [1]
    cyclic: list[Any] = [shared, shared]
    cyclic.append(cyclic)
    back = blob_store.get(blob_store.put(cyclic), trusted=True)
    assert back[0] is back[1]
    assert back[2] is back


# --- opening -------------------------------------------------------------------------


def test_roots_can_be_paths_or_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_artifact_store("rel/artifacts").root == str(tmp_path / "rel" / "artifacts")
    by_url = open_artifact_store(f"file://{tmp_path}/via%20url")
    ref = by_url.put(b"u" * LARGE)
    assert (tmp_path / "via url" / "sha256" / ref.sha256[:2] / ref.sha256).is_file()
    assert open_artifact_store("memory://lockgate-open-test").root == "memory://lockgate-open-test"


@pytest.mark.parametrize(
    ("root", "options"),
    [
        ("/tmp/x", {"inline_limit": -1}),
        ("nosuchprotocol://bucket/x", {}),
        ("file://otherhost/x", {}),
        ("", {}),
    ],
)
def test_bad_roots_and_limits_are_config_errors(root: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        open_artifact_store(root, **options)
