"""Write-once, content-addressed object storage for a team's case data: a shared directory or an S3 bucket.

A team store keeps the case data of each ingested file as one Parquet object, written once and never changed,
in a location every process can reach: a directory (`--data /srv/readiness/data`, `file://…` accepted) or
S3-compatible object storage (`--data s3://bucket/prefix`). `open_objects(location)` gives an `ObjectStore`:

- `put(name, local_path) -> ObjectRef` writes a local file under `name` (e.g. `cases/<source digest>.parquet`)
  atomically and idempotently: an object already there with the same sha256 is left alone (nothing written);
  one with different bytes is refused (`ObjectConflict`), since a content-addressed name must never change.
  Directory: a temporary file in the target directory, fsynced, then linked into place without overwriting
  (hard link; `os.replace` where the filesystem has no hard links). S3: one PUT with `If-None-Match: *`
  (create-only) up to `SINGLE_PUT_BYTES`, a multipart upload through boto3's `upload_file` above; the sha256 is
  stored as object metadata (`x-amz-meta-sha256`) and compared before and after writing.
- `fetch(ref) -> Path` gives a local file DuckDB can read, whose bytes are verified against `ref.sha256`.
  Both: a private copy in the cache directory (`cache_dir`, else
  `$READINESS_CACHE_DIR`, else `~/.cache/readiness/objects`) under its sha256, verified while it is copied or
  downloaded and moved into place atomically: DuckDB never reads the shared object itself, which someone with write
  access to the data location could change between a check and the read. A file is hashed once per process per
  (path, size, mtime, ctime, inode) once it is older than two seconds: a 1 GB object is not re-read on every page
  load. A wrong digest
  (a tampered or damaged object) raises `ObjectCorrupt` naming the object and both digests; it is never read.
- `exists(name) -> ObjectRef | None`, `describe()` (the location for messages, credentials redacted).

S3 endpoint, region and credentials come from the standard AWS environment, which boto3 reads itself:
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (e.g. a MinIO or other S3-compatible server), `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, or a profile (`AWS_PROFILE`). Credentials are never accepted in
the location itself. Some older S3-compatible servers refuse the integrity checksums boto3 sends by default
since 1.36; for those set `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` (the sha256 check here is independent). An unreachable endpoint, a missing bucket, missing credentials or a permission refusal is
one plain sentence (`ObjectsUnavailable`, a `StoreUnavailable`), never a traceback or a secret.

`parquet_digest(path)` is the digest the team store records for a Parquet file: 'sha256:<hex>' of its bytes
(`core.canonical.file_digest`); `ObjectRef.sha256` is the bare hex of the same digest (`ObjectRef.digest` adds
the prefix).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, Field

from dashboard.core.canonical import file_digest
from dashboard.core.errors import ReadinessError, UsageError
from dashboard.store.db import StoreUnavailable

SINGLE_PUT_BYTES = 64 << 20  # S3: one create-only PUT up to this size, a multipart upload above
COPY_CHUNK = 1 << 20
RACY_NS = 2_000_000_000  # a file modified this recently is re-hashed on every fetch (see _cached_sha256)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectRef(BaseModel):
    """One stored object: its name in the object store, and the sha256 and size of its bytes."""

    name: str = Field(description="The object's name inside the store, e.g. 'cases/<source digest hex>.parquet'.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex sha256 of the object's bytes.")
    size: int = Field(ge=0, description="The object's size in bytes.")

    @property
    def digest(self) -> str:
        """'sha256:<hex>', the form the rest of Readiness names file digests in."""
        return "sha256:" + self.sha256


class ObjectsUnavailable(StoreUnavailable):
    """The object storage cannot be used: unreachable, no such bucket or directory, no credentials, refused."""


class ObjectConflict(ReadinessError):
    """An object already exists under the name with different bytes; content-addressed names never change."""

    exit_code = 1


class ObjectCorrupt(ReadinessError):
    """An object's bytes do not match its recorded sha256 (tampered, damaged or missing); it is not read."""

    exit_code = 1


@runtime_checkable
class ObjectStore(Protocol):
    """Write-once objects named by content; see the module docstring for the guarantees of each method."""

    def put(self, name: str, local_path: Path) -> ObjectRef:
        """Store the bytes of `local_path` under `name`, or confirm the same bytes are already there."""
        ...

    def fetch(self, ref: ObjectRef) -> Path:
        """A local file with exactly the bytes of `ref` (verified), for DuckDB to read."""
        ...

    def exists(self, name: str) -> ObjectRef | None:
        """The object stored under `name` (as recorded at write time), or None."""
        ...

    def describe(self) -> str:
        """The location, for messages (no credentials)."""
        ...


def parquet_digest(path: Path | str) -> str:
    """'sha256:<hex>' of a Parquet file's bytes (the project's one file-digest helper)."""
    return file_digest(str(path))


def default_cache_dir() -> Path:
    """$READINESS_CACHE_DIR, else ~/.cache/readiness/objects."""
    env = os.environ.get("READINESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "readiness" / "objects"


def open_objects(location: str, cache_dir: Path | None = None) -> ObjectStore:
    """The object store at `location`: a directory path (`file://` accepted) or `s3://bucket/prefix`."""
    if not location or not location.strip():
        raise UsageError("--data: give a directory or s3://bucket/prefix")
    if location.startswith("s3://"):
        return S3Objects(location, cache_dir or default_cache_dir())
    if location.startswith("file://"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"--data {location}: a file:// location must be on this machine (file:///path)")
        return DirectoryObjects(Path(unquote(parts.path)), cache_dir or default_cache_dir())
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        scheme = location.split("://", 1)[0]
        raise UsageError(f"--data: {scheme}:// is not supported; give a directory or s3://bucket/prefix")
    return DirectoryObjects(Path(location), cache_dir or default_cache_dir())


def check_name(name: str) -> str:
    """A relative object name of plain segments (letters, digits, '.', '_', '-'); anything else is refused."""
    if len(name) > 512 or not _NAME.match(name) or any(seg in (".", "..") for seg in name.split("/")):
        raise UsageError(f"object name {name!r}: use relative names of letters, digits, '.', '_', '-' and '/'")
    return name


# --- hashing, once per process per file version --------------------------------------------------------------

_verified: dict[tuple[str, int, int, int, int], str] = {}
_verified_lock = threading.Lock()


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    return file_digest(str(path)).removeprefix("sha256:")


def _file_key(path: Path, st: os.stat_result) -> tuple[str, int, int, int, int]:
    # ctime too: `utime` can restore a rewritten file's mtime, never its ctime
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _cached_sha256(path: Path) -> tuple[str, int]:
    """(hex sha256, size) of `path`, hashed only when this version of the file was not hashed before.

    A version is (path, size, mtime, ctime, inode). A file modified within the last `RACY_NS` is hashed every time
    (as git does for "racy" index entries): a change in the same clock tick would keep size and mtime.
    """
    st = path.stat()
    key = _file_key(path, st)
    with _verified_lock:
        known = _verified.get(key)
    if known is None:
        known = _sha256_file(path)
        if _file_key(path, path.stat()) == key and time.time_ns() - st.st_mtime_ns > RACY_NS:
            with _verified_lock:
                _verified[key] = known
    return known, st.st_size


def _corrupt(name: str, where: str, expected: str, actual: str) -> ObjectCorrupt:
    return ObjectCorrupt(f"object {name} in {where} is damaged or was changed: its bytes have sha256 {actual}, "
                         f"but sha256 {expected} was recorded when it was written; it is not read")


def _conflict(name: str, where: str, existing: str, new: str) -> ObjectConflict:
    return ObjectConflict(f"object {name} in {where} already holds different bytes (sha256 {existing}, not "
                          f"{new}); a content-addressed object is never replaced")


def _copy_hashing(src: Path, fd: int) -> tuple[str, int]:
    """Copy `src` into the open file `fd`, fsync it, and return (hex sha256, size) of the bytes written."""
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as f:
        while block := f.read(COPY_CHUNK):
            h.update(block)
            size += len(block)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view):]
    os.fsync(fd)
    return h.hexdigest(), size


def _cached_copy(cache_dir: Path, ref: ObjectRef, where: str, fill: Callable[[Path], str],
                 unavailable: Callable[[OSError], ReadinessError]) -> Path:
    """The verified private copy of `ref` in `cache_dir` (named by its sha256): reused when it is still intact,
    else filled by `fill(tmp) -> sha256 of what it wrote`, checked, and moved into place atomically."""
    suffix = "".join(Path(ref.name).suffixes[-1:])
    target = cache_dir / ref.sha256[:2] / f"{ref.sha256}{suffix}"
    try:
        if target.is_file():
            sha, size = _cached_sha256(target)
            if sha == ref.sha256 and size == ref.size:
                return target
            target.unlink()  # a damaged cache copy: fetch the object again
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise unavailable(e) from None
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        sha = fill(tmp)
        if sha != ref.sha256:
            raise _corrupt(ref.name, where, ref.sha256, sha)
        os.replace(tmp, target)
    except OSError as e:
        raise unavailable(e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return target


def _read_back(store: ObjectStore, name: str, sha: str, size: int) -> ObjectRef:
    """After a write (ours, or another writer's that came first): the object must be there with our bytes."""
    stored = store.exists(name)
    if stored is None:
        raise ObjectsUnavailable(f"data location {store.describe()}: object {name} is not there right after writing it")
    if stored.sha256 != sha:
        raise _conflict(name, store.describe(), stored.sha256, sha)
    return ObjectRef(name=name, sha256=sha, size=size)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_source(local_path: Path) -> None:
    if not local_path.is_file():
        raise UsageError(f"{local_path}: not a readable file to store")


# --- a shared directory ---------------------------------------------------------------------------------------


class DirectoryObjects:
    """Objects as files under one directory (local disk or a shared filesystem such as NFS)."""

    def __init__(self, root: Path, cache_dir: Path):
        self.root = root.expanduser().absolute()
        self.cache_dir = cache_dir.expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            raise ObjectsUnavailable(f"data location {self.root} is not a directory")

    def describe(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def _unavailable(self, e: OSError) -> ObjectsUnavailable:
        why = e.strerror or type(e).__name__
        return ObjectsUnavailable(f"data location {self.root} cannot be used: {why}")

    def exists(self, name: str) -> ObjectRef | None:
        path = self._path(name)
        try:
            if not path.is_file():
                return None
            sha, size = _cached_sha256(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._unavailable(e) from None
        return ObjectRef(name=name, sha256=sha, size=size)

    def put(self, name: str, local_path: Path) -> ObjectRef:
        path = self._path(name)
        _read_source(local_path)
        existing = self.exists(name)
        if existing is not None:
            new = _sha256_file(local_path)
            if existing.sha256 != new:
                raise _conflict(name, self.describe(), existing.sha256, new)
            return existing
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as e:
            raise self._unavailable(e) from None
        tmp = Path(tmp_name)
        try:
            try:
                sha, size = _copy_hashing(local_path, fd)
                os.fchmod(fd, 0o444)  # write-once: nobody should edit an object in place
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # atomic and never overwrites: a concurrent writer of the same name wins once
            except FileExistsError:
                pass
            except OSError:  # no hard links on this filesystem: replace only if still absent
                if not path.exists():
                    os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            raise self._unavailable(e) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return _read_back(self, name, sha, size)

    def fetch(self, ref: ObjectRef) -> Path:
        """A private copy in the cache directory, verified while it is copied: DuckDB never reads the shared file,
        which someone with write access to the data location could change between a check and the read."""
        path = self._path(ref.name)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectCorrupt(f"object {ref.name} is missing from {self.describe()} "
                                f"(sha256 {ref.sha256} was recorded)") from None
        except OSError as e:
            raise self._unavailable(e) from None
        if st.st_size != ref.size:
            raise ObjectCorrupt(f"object {ref.name} in {self.describe()} is damaged or was changed: it has "
                                f"{st.st_size} bytes, {ref.size} were recorded (sha256 {ref.sha256}); it is not read")

        def copy(tmp: Path) -> str:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                return _copy_hashing(path, fd)[0]
            finally:
                os.close(fd)

        return _cached_copy(self.cache_dir, ref, self.describe(), copy, self._unavailable)


# --- S3-compatible object storage -----------------------------------------------------------------------------


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


class S3Objects:
    """Objects in an S3 bucket under a key prefix, downloaded into a local cache directory to be read."""

    def __init__(self, location: str, cache_dir: Path):
        parts = urlsplit(location)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise UsageError("--data s3://…: put credentials in the environment (AWS_ACCESS_KEY_ID, "
                             "AWS_SECRET_ACCESS_KEY), not in the location")
        if parts.query or parts.fragment:
            raise UsageError("--data s3://bucket/prefix: no query or fragment")
        self.bucket = parts.netloc
        if not _BUCKET.match(self.bucket):
            raise UsageError(f"--data s3://{self.bucket}: not a valid bucket name")
        self.prefix = parts.path.strip("/")
        if self.prefix:
            check_name(self.prefix)
        self.cache_dir = cache_dir.expanduser().absolute()
        self._client: Any = None
        self._checked = False
        self._lock = threading.Lock()

    # connection and errors

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use from the standard AWS environment)."""
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise UsageError("s3:// data locations need boto3: pip install 'readiness[team]'") from None
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
            try:
                client = boto3.session.Session().client("s3", config=config)
            except Exception as e:  # noqa: BLE001 - botocore raises many kinds; the message names the problem
                raise ObjectsUnavailable(f"object storage s3://{self.bucket}: cannot be configured "
                                         f"({type(e).__name__})") from None
            with self._lock:
                if self._client is None:
                    self._client = client
        return self._client

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        endpoint = getattr(getattr(self._client, "meta", None), "endpoint_url", None) if self._client else None
        return f"{where} (endpoint {_redact_url(endpoint)})" if endpoint else where

    def _unavailable(self, e: Exception) -> ReadinessError:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        where = self.describe()
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return ObjectsUnavailable(f"object storage {where}: no credentials; set AWS_ACCESS_KEY_ID and "
                                      "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
        if isinstance(e, (EndpointConnectionError, ConnectTimeoutError)):
            return ObjectsUnavailable(f"object storage {where} cannot be reached; check AWS_ENDPOINT_URL_S3 / "
                                      "AWS_ENDPOINT_URL and the network")
        if isinstance(e, ReadTimeoutError):
            return ObjectsUnavailable(f"object storage {where} did not answer in time")
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and not self._checked):
                return ObjectsUnavailable(f"object storage {where}: bucket {self.bucket} does not exist")
            if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                        "ExpiredToken", "InvalidToken") or status == 403:
                return ObjectsUnavailable(f"object storage {where}: permission denied ({code or status}); "
                                          "check the credentials and the bucket policy")
            return ObjectsUnavailable(f"object storage {where} refused the request ({code or status})")
        if isinstance(e, OSError):
            return ObjectsUnavailable(f"object cache {self.cache_dir} cannot be used: {e.strerror or e}")
        return ObjectsUnavailable(f"object storage {where} failed: {type(e).__name__}")

    def check(self) -> None:
        """Confirm once that the bucket exists and can be reached with these credentials."""
        if self._checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:  # noqa: BLE001 - mapped to one plain sentence
            raise self._unavailable(e) from None
        self._checked = True

    def _key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    # the object store

    def exists(self, name: str) -> ObjectRef | None:
        from botocore.exceptions import ClientError

        key = self._key(name)
        self.check()
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._unavailable(e) from None
        except Exception as e:  # noqa: BLE001
            raise self._unavailable(e) from None
        sha = str(head.get("Metadata", {}).get("sha256", ""))
        if not _HEX64.match(sha):
            raise ObjectCorrupt(f"object {name} in {self.describe()} has no recorded sha256 "
                                "(x-amz-meta-sha256); it was not written by readiness and is not read")
        return ObjectRef(name=name, sha256=sha, size=int(head.get("ContentLength", 0)))

    def put(self, name: str, local_path: Path) -> ObjectRef:
        from botocore.exceptions import ClientError

        key = self._key(name)
        _read_source(local_path)
        sha = _sha256_file(local_path)
        size = local_path.stat().st_size
        existing = self.exists(name)
        if existing is not None:
            if existing.sha256 != sha:
                raise _conflict(name, self.describe(), existing.sha256, sha)
            return existing
        meta = {"sha256": sha}
        try:
            if size <= SINGLE_PUT_BYTES:
                with open(local_path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=meta,
                                           ContentLength=size, IfNoneMatch="*")
            else:
                self.client.upload_file(str(local_path), self.bucket, key, ExtraArgs={"Metadata": meta})
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise self._unavailable(e) from None
            # another writer created the object first: fall through and compare its digest with ours
        except Exception as e:  # noqa: BLE001
            raise self._unavailable(e) from None
        return _read_back(self, name, sha, size)

    def fetch(self, ref: ObjectRef) -> Path:
        from botocore.exceptions import ClientError

        def download(tmp: Path) -> str:
            self.check()
            try:
                self.client.download_file(self.bucket, self._key(ref.name), str(tmp))
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                    raise ObjectCorrupt(f"object {ref.name} is missing from {self.describe()} "
                                        f"(sha256 {ref.sha256} was recorded)") from None
                raise self._unavailable(e) from None
            except ReadinessError:
                raise
            except Exception as e:  # noqa: BLE001
                raise self._unavailable(e) from None
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            return _sha256_file(tmp)

        return _cached_copy(self.cache_dir, ref, self.describe(), download, self._unavailable)
