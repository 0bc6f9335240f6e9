"""Tests of the team store's object storage (dashboard/store/objects.py): the same tests for a shared directory
and for S3 (a real moto server on a loopback port, the `s3_endpoint` fixture), plus each backend's own refusals."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import moto_server, s3_bucket

from dashboard.core.errors import UsageError
from dashboard.store import objects
from dashboard.store.objects import (
    DirectoryObjects,
    ObjectConflict,
    ObjectCorrupt,
    ObjectRef,
    ObjectStore,
    ObjectsUnavailable,
    S3Objects,
    open_objects,
    parquet_digest,
)

NAME = "cases/" + "ab" * 32 + ".parquet"


@dataclass
class Backend:
    kind: str
    location: str
    cache_dir: Path
    env: dict[str, str]
    raw: object  # the directory Path, or the boto3 client behind the store's back
    bucket: str = ""

    def open(self, cache_dir: Path | None = None) -> ObjectStore:
        return open_objects(self.location, cache_dir or self.cache_dir)

    def tamper(self, name: str, data: bytes) -> None:
        """Change an object's bytes behind the store's back (keeping its recorded sha256 metadata on S3)."""
        if self.kind == "directory":
            path = Path(self.location) / name
            path.chmod(0o644)
            path.write_bytes(data)
        else:
            key = f"team/{name}"
            meta = self.raw.head_object(Bucket=self.bucket, Key=key)["Metadata"]  # type: ignore[attr-defined]
            self.raw.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=meta)  # type: ignore[attr-defined]

    def requests(self, store: ObjectStore) -> list[str]:
        """Every S3 operation the store sends from now on (always empty for a directory)."""
        seen: list[str] = []
        if isinstance(store, S3Objects):
            store.client.meta.events.register("before-call.s3", lambda model, **_: seen.append(model.name))
        return seen


@pytest.fixture(params=["directory", "s3"])
def backend(request, tmp_path, monkeypatch) -> Backend:
    if request.param == "directory":
        return Backend("directory", str(tmp_path / "data"), tmp_path / "cache", {}, tmp_path / "data")
    env = request.getfixturevalue("s3_endpoint")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    bucket = f"readiness-{uuid.uuid4().hex[:12]}"
    client = s3_bucket(env, bucket)
    return Backend("s3", f"s3://{bucket}/team", tmp_path / "cache", env, client, bucket)


def parquet_file(path: Path, rows: int = 50, seed: int = 0) -> Path:
    table = pa.table({"case_id": [f"c{i}" for i in range(rows)], "score": [(i * 7 + seed) % 11 / 10 for i in range(rows)]})
    pq.write_table(table, path)
    return path


def test_put_fetch_round_trip_reads_in_duckdb(backend, tmp_path):
    """Test that a stored Parquet file comes back byte for byte and DuckDB reads it."""
    src = parquet_file(tmp_path / "src.parquet")
    store = backend.open()
    assert store.exists(NAME) is None
    ref = store.put(NAME, src)
    data = src.read_bytes()
    assert ref == ObjectRef(name=NAME, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert ref.digest == parquet_digest(src)
    assert store.exists(NAME) == ref
    got = store.fetch(ref)
    assert got.read_bytes() == data
    con = duckdb.connect()
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(got)]).fetchall() == [(50,)]
    con.close()
    # another process's view of the same location sees the same object
    other = backend.open(tmp_path / "other-cache")
    assert other.exists(NAME) == ref
    assert other.fetch(ref).read_bytes() == data


def test_re_put_same_bytes_writes_nothing(backend, tmp_path):
    """Test that putting the same bytes again under the same name is a no-op returning the same ref."""
    src = parquet_file(tmp_path / "src.parquet")
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(src.read_bytes())
    store = backend.open()
    ref = store.put(NAME, src)
    if backend.kind == "directory":
        before = os.stat(Path(backend.location) / NAME)
    again = backend.open()
    sent = backend.requests(again)
    assert again.put(NAME, copy) == ref
    if backend.kind == "directory":
        after = os.stat(Path(backend.location) / NAME)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert sorted(p.name for p in (Path(backend.location) / "cases").iterdir()) == [Path(NAME).name]
    else:
        assert "PutObject" not in sent and "CreateMultipartUpload" not in sent, sent


def test_different_bytes_under_same_name_refused(backend, tmp_path):
    """Test that a content-addressed name never changes: different bytes are refused, the original stays."""
    first = parquet_file(tmp_path / "a.parquet", seed=1)
    second = parquet_file(tmp_path / "b.parquet", seed=2)
    store = backend.open()
    ref = store.put(NAME, first)
    with pytest.raises(ObjectConflict) as e:
        backend.open().put(NAME, second)
    msg = str(e.value)
    assert NAME in msg and ref.sha256 in msg and hashlib.sha256(second.read_bytes()).hexdigest() in msg
    assert "\n" not in msg
    assert backend.open(tmp_path / "c2").fetch(ref).read_bytes() == first.read_bytes()


@pytest.mark.parametrize("same_size", [True, False])
def test_tampered_object_detected_at_fetch(backend, tmp_path, same_size):
    """Test that an object changed behind the store's back is refused at fetch, naming the object and both digests."""
    src = parquet_file(tmp_path / "src.parquet")
    ref = backend.open().put(NAME, src)
    data = bytearray(src.read_bytes())
    if same_size:
        data[len(data) // 2] ^= 0xFF
    else:
        data += b"appended"
    backend.tamper(NAME, bytes(data))
    store = backend.open(tmp_path / "fresh-cache")
    with pytest.raises(ObjectCorrupt) as e:
        store.fetch(ref)
    msg = str(e.value)
    assert NAME in msg and ref.sha256 in msg
    if same_size or backend.kind == "s3":
        assert hashlib.sha256(bytes(data)).hexdigest() in msg
    else:
        assert str(len(data)) in msg and str(ref.size) in msg
    # nothing damaged is left in the cache to be read later
    assert not any(p.is_file() for p in (tmp_path / "fresh-cache").rglob("*"))


def test_concurrent_puts_of_one_object(backend, tmp_path):
    """Test that threads and processes putting the same object at once all get the same ref and one intact object."""
    src = parquet_file(tmp_path / "src.parquet", rows=20_000)
    expected = ObjectRef(name=NAME, sha256=hashlib.sha256(src.read_bytes()).hexdigest(), size=src.stat().st_size)
    code = ("import json, sys; from pathlib import Path; from dashboard.store.objects import open_objects; "
            "r = open_objects(sys.argv[1], Path(sys.argv[2])).put(sys.argv[3], Path(sys.argv[4])); "
            "print(r.model_dump_json())")
    env = {**os.environ, **backend.env}
    procs = [subprocess.Popen([sys.executable, "-c", code, backend.location, str(tmp_path / f"pc{i}"), NAME, str(src)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for i in range(3)]
    results: list[ObjectRef | BaseException] = []

    def put() -> None:
        try:
            results.append(backend.open().put(NAME, src))
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            results.append(e)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        results.append(ObjectRef.model_validate(json.loads(out)))
    assert results == [expected] * 9
    assert backend.open(tmp_path / "verify").fetch(expected).read_bytes() == src.read_bytes()
    if backend.kind == "directory":
        assert [p.name for p in (Path(backend.location) / "cases").iterdir()] == [Path(NAME).name]  # no temp files


def test_second_fetch_reuses_verified_file(backend, tmp_path, monkeypatch):
    """Test that a second fetch neither downloads nor re-hashes: a big object is hashed once per process."""
    src = parquet_file(tmp_path / "src.parquet")
    ref = backend.open().put(NAME, src)
    store = backend.open()
    first = store.fetch(ref)
    assert store.fetch(ref) == first
    old = time.time_ns() - 3_600 * 10**9  # as on a page load an hour after the object was written
    os.utime(first, ns=(old, old))
    assert store.fetch(ref) == first  # hashed once more: a file modified within RACY_NS is never trusted
    mtime = first.stat().st_mtime_ns
    hashed: list[Path] = []
    real = objects._sha256_file
    monkeypatch.setattr(objects, "_sha256_file", lambda p: hashed.append(p) or real(p))
    sent = backend.requests(store)
    for _ in range(3):
        assert store.fetch(ref) == first
    assert hashed == [] and sent == []
    assert first.stat().st_mtime_ns == mtime
    # the cache is shared by the processes of one machine: a new store on the same cache does not download
    again = backend.open()
    again_sent = backend.requests(again)
    assert again.fetch(ref) == first and again_sent == []
    # a changed cache copy is a new version: hashed again, and replaced by a fresh verified copy of the object
    first.chmod(0o644)
    first.write_bytes(b"x" * ref.size)
    assert store.fetch(ref).read_bytes() == src.read_bytes()
    if backend.kind != "directory":
        assert "GetObject" in sent


def test_bad_names_and_missing_objects(backend, tmp_path):
    """Test that names escaping the store are refused and a missing object is a clear error."""
    store = backend.open()
    src = parquet_file(tmp_path / "src.parquet")
    for bad in ("../x", "/etc/passwd", "a//b", "cases/../../x", "", "a\\b", ".hidden"):
        with pytest.raises(UsageError):
            store.put(bad, src)
    ref = ObjectRef(name="cases/gone.parquet", sha256="cd" * 32, size=10)
    with pytest.raises(ObjectCorrupt, match="cases/gone.parquet is missing"):
        store.fetch(ref)


def test_directory_location_forms(tmp_path, monkeypatch):
    """Test that relative, absolute and file:// locations name the same directory, and a file is refused."""
    monkeypatch.chdir(tmp_path)
    src = parquet_file(tmp_path / "src.parquet")
    ref = open_objects("data").put(NAME, src)
    assert isinstance(open_objects(f"file://{tmp_path}/data"), DirectoryObjects)
    assert open_objects(f"file://{tmp_path}/data").exists(NAME) == ref
    assert open_objects(str(tmp_path / "data")).describe() == str(tmp_path / "data")
    spaced = open_objects(f"file://{tmp_path}/my%20data")
    assert spaced.describe() == str(tmp_path / "my data")
    spaced.put(NAME, src)
    assert (tmp_path / "my data" / NAME).is_file()
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ObjectsUnavailable, match="not a directory"):
        open_objects(str(tmp_path / "plain"))
    for bad in ("gs://bucket/x", "file://otherhost/x", "s3://Bad_Bucket/x", "s3://AKIA:secret@bucket/x"):
        with pytest.raises(UsageError) as e:
            open_objects(bad)
        assert "secret" not in str(e.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_unreachable_endpoint_is_one_sentence(monkeypatch, tmp_path):
    """Test that an unreachable endpoint gives one plain sentence without secrets, in bounded time."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://AKIAUSER:topsecret@127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_objects("s3://team-bucket/data", tmp_path / "cache")
    t0 = time.monotonic()
    with pytest.raises(ObjectsUnavailable) as e:
        store.exists(NAME)
    elapsed = time.monotonic() - t0
    msg = str(e.value)
    assert "cannot be reached" in msg and "s3://team-bucket/data" in msg, msg
    for secret in ("topsecret", "verysecretvalue", "AKIAEXAMPLEKEY", "Traceback"):
        assert secret not in msg
    assert "\n" not in msg and elapsed < 15


def test_s3_missing_bucket_and_credentials(s3_endpoint, monkeypatch, tmp_path):
    """Test that a missing bucket and missing credentials are each one plain sentence."""
    for k, v in s3_endpoint.items():
        monkeypatch.setenv(k, v)
    store = open_objects("s3://no-such-bucket-here/x", tmp_path / "cache")
    with pytest.raises(ObjectsUnavailable, match="bucket no-such-bucket-here does not exist"):
        store.put(NAME, parquet_file(tmp_path / "src.parquet"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ObjectsUnavailable, match="no credentials"):
        open_objects("s3://no-such-bucket-here/x", tmp_path / "cache").exists(NAME)


def test_s3_object_without_recorded_digest_not_read(s3_endpoint, monkeypatch, tmp_path):
    """Test that an object written by something else (no sha256 metadata) is neither trusted nor overwritten."""
    for k, v in s3_endpoint.items():
        monkeypatch.setenv(k, v)
    client = s3_bucket(s3_endpoint, "foreign-objects")
    client.put_object(Bucket="foreign-objects", Key=f"p/{NAME}", Body=b"not ours")
    store = open_objects("s3://foreign-objects/p", tmp_path / "cache")
    with pytest.raises(ObjectCorrupt, match="no recorded sha256"):
        store.exists(NAME)
    with pytest.raises(ObjectCorrupt):
        store.put(NAME, parquet_file(tmp_path / "src.parquet"))
    assert client.get_object(Bucket="foreign-objects", Key=f"p/{NAME}")["Body"].read() == b"not ours"


def test_s3_large_object_uses_multipart(s3_endpoint, monkeypatch, tmp_path):
    """Test that an object above the single-PUT size goes up as a multipart upload and comes back verified."""
    for k, v in s3_endpoint.items():
        monkeypatch.setenv(k, v)
    s3_bucket(s3_endpoint, "big-objects")
    monkeypatch.setattr(objects, "SINGLE_PUT_BYTES", 1 << 20)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 << 20))
    store = open_objects("s3://big-objects", tmp_path / "cache")
    assert isinstance(store, S3Objects)
    sent: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda model, **_: sent.append(model.name))
    ref = store.put("cases/big.bin", big)
    assert "CreateMultipartUpload" in sent and "PutObject" not in sent
    assert ref.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert open_objects("s3://big-objects", tmp_path / "c2").fetch(ref).read_bytes() == big.read_bytes()


def test_s3_global_endpoint_variable(s3_endpoint, monkeypatch, tmp_path):
    """Test that AWS_ENDPOINT_URL (for every service) is honoured as well as AWS_ENDPOINT_URL_S3."""
    for k, v in s3_endpoint.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint["AWS_ENDPOINT_URL_S3"])
    s3_bucket(s3_endpoint, "global-endpoint")
    store = open_objects("s3://global-endpoint/x", tmp_path / "cache")
    ref = store.put(NAME, parquet_file(tmp_path / "src.parquet"))
    assert store.exists(NAME) == ref
    assert s3_endpoint["AWS_ENDPOINT_URL_S3"] in store.describe()


def test_s3_permission_denied_is_one_sentence(s3_endpoint, monkeypatch, tmp_path):
    """Test that credentials the server refuses (moto with IAM auth on) give one plain sentence, no secret."""
    pytest.importorskip("moto.server")
    with moto_server(tmp_path / "auth.log", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as url:
        for k, v in s3_endpoint.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unknownsecretvalue")
        with pytest.raises(ObjectsUnavailable) as e:
            open_objects("s3://guarded-bucket/x", tmp_path / "cache").put(NAME, parquet_file(tmp_path / "s.parquet"))
    msg = str(e.value)
    assert "permission denied" in msg and "\n" not in msg, msg
    assert "AKIAUNKNOWNKEY" not in msg and "unknownsecretvalue" not in msg
