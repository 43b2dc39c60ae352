"""Where media bytes live, addressed by SHA-256: the local media folder (the embedded default) or an S3 bucket
(``[media] s3_endpoint``: SeaweedFS, MinIO, Ceph RGW, AWS). ``central.store.media.MediaStore`` keeps the
``media`` rows and goes through one of these for the bytes.

Both lay objects out as ``<sha256[:2]>/<sha256>``. Writing is idempotent (an object already there is not
written again) and never leaves a partial object under a valid name: the folder writes beside the target and
renames; S3 makes an object visible only when its (multipart) upload completes, and an upload that fails is
aborted. Files go to S3 in parts of ``[media] multipart_chunk_mb``, read from disk one part at a time, so
central never holds a whole clip in memory; the SHA-256 is computed over the parts as they go and the upload
is aborted when it does not match the name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

MIB = 1024 * 1024
_READ = 256 * 1024  # bytes per read when streaming out


class ObjectMismatch(ValueError):
    """The bytes do not hash to the name they were to be stored under: nothing was stored."""


@dataclass
class ObjectRead:
    """Part or all of an object: ``chunks`` yields its bytes (``length`` of them, from ``start``)."""

    size: int  # the whole object's
    start: int
    length: int
    chunks: Iterator[bytes]


class ObjectStore(Protocol):
    kind: str

    def describe(self) -> dict: ...
    def exists(self, sha256: str) -> bool: ...
    def size(self, sha256: str) -> int | None: ...
    def put_bytes(self, sha256: str, data: bytes, content_type: str) -> None: ...
    def put_file(self, sha256: str, src: Path, content_type: str) -> None: ...
    def read(self, sha256: str, start: int = 0, end: int | None = None) -> ObjectRead | None: ...
    def get(self, sha256: str) -> bytes | None: ...
    def delete(self, sha256: str) -> None: ...


def stored_sha256(objects: ObjectStore, sha256: str) -> str | None:
    """The SHA-256 of the bytes stored under the name ``sha256`` (streamed), None when nothing is: the check
    that evidence is as it arrived."""
    found = objects.read(sha256)
    if found is None:
        return None
    digest = hashlib.sha256()
    for chunk in found.chunks:
        digest.update(chunk)
    return digest.hexdigest()


def as_object_store(media: Path | ObjectStore) -> ObjectStore:
    """``media`` as an object store: a folder path becomes the folder's store."""
    return LocalObjects(Path(media)) if isinstance(media, (str, Path)) else media


def key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


class LocalObjects:
    """The media folder: ``<root>/<sha256[:2]>/<sha256>``."""

    kind = "local"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def file(self, sha256: str) -> Path:
        return self.root / key(sha256)

    def describe(self) -> dict:
        return {"kind": self.kind, "folder": str(self.root)}

    def exists(self, sha256: str) -> bool:
        return self.file(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.file(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def put_bytes(self, sha256: str, data: bytes, content_type: str) -> None:
        target = self.file(sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename: a crash never leaves a truncated file under a valid name.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())  # a full disk says so here, not later with the file named
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, sha256: str, src: Path, content_type: str) -> None:
        """Move ``src`` (already verified) in; ``src`` is gone afterwards."""
        target = self.file(sha256)
        if target.exists():
            src.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, target)
        except OSError:  # another file system: copy beside the target, then rename (src stays on failure)
            tmp = target.with_name(f".incoming-{sha256}")
            try:
                shutil.copyfile(src, tmp)
                with open(tmp, "rb+") as copied:
                    os.fsync(copied.fileno())
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            src.unlink()

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> ObjectRead | None:
        try:
            handle = open(self.file(sha256), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            return None
        size = os.fstat(handle.fileno()).st_size
        start, length = _span(size, start, end)
        handle.seek(start)
        return ObjectRead(size, start, length, _chunks(handle, length))

    def get(self, sha256: str) -> bytes | None:
        """The whole object in memory (small ones only: a snapshot), None when there is none."""
        try:
            return self.file(sha256).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        self.file(sha256).unlink(missing_ok=True)


class S3Objects:
    """A bucket of an S3-compatible object store, through boto3 (its clients are safe to share between
    threads)."""

    kind = "s3"

    def __init__(self, client, bucket: str, *, part_bytes: int = 8 * MIB):
        self.client = client
        self.bucket = bucket
        self.part_bytes = max(part_bytes, 5 * MIB)  # S3's smallest part but the last
        self._bucket_ready = False

    def describe(self) -> dict:
        return {"kind": self.kind, "endpoint": self.client.meta.endpoint_url, "bucket": self.bucket}

    def ensure_bucket(self) -> None:
        """Create the bucket if it is not there. Called before the first write, not at start: central starts
        (and keeps what it receives for later) while the object store is down."""
        if self._bucket_ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                # Several workers starting on a new bucket at once: the first to create it wins, and the others
                # are told it is already theirs (the same credentials), which is as good as creating it.
                if _error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise
        self._bucket_ready = True

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def size(self, sha256: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key(sha256))["ContentLength"]
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    def put_bytes(self, sha256: str, data: bytes, content_type: str) -> None:
        self._check(sha256, data)
        self.ensure_bucket()
        if not self.exists(sha256):
            self._put(sha256, data, content_type)

    @staticmethod
    def _check(sha256: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ObjectMismatch(f"the bytes do not hash to {sha256}")

    def _put(self, sha256: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key(sha256), Body=data, ContentType=content_type)

    def put_file(self, sha256: str, src: Path, content_type: str) -> None:
        """Upload ``src`` part by part (one part in memory at a time); ``src`` is removed once the object is
        complete, and stays if anything fails."""
        src = Path(src)
        self.ensure_bucket()
        if not self.exists(sha256):
            if src.stat().st_size <= self.part_bytes:  # one PUT, without put_bytes' second HEAD
                data = src.read_bytes()
                self._check(sha256, data)
                self._put(sha256, data, content_type)
            else:
                self._multipart(sha256, src, content_type)
        src.unlink()

    def _multipart(self, sha256: str, src: Path, content_type: str) -> None:
        name = key(sha256)
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=name, ContentType=content_type)
        upload_id = upload["UploadId"]
        try:
            digest, parts = hashlib.sha256(), []
            with open(src, "rb") as handle:
                while part := handle.read(self.part_bytes):
                    digest.update(part)
                    number = len(parts) + 1
                    answer = self.client.upload_part(
                        Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=part
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
            if digest.hexdigest() != sha256:
                raise ObjectMismatch(f"{src} does not hash to {sha256}")
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # The first failure is the one to report; an upload the store cannot abort now is never completed,
            # so it names nothing (a bucket lifecycle rule clears such leftovers).
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> ObjectRead | None:
        size = self.size(sha256)
        if size is None:
            return None
        start, length = _span(size, start, end)
        if length == 0:
            return ObjectRead(size, start, 0, iter(()))
        answer = self.client.get_object(
            Bucket=self.bucket, Key=key(sha256), Range=f"bytes={start}-{start + length - 1}"
        )
        return ObjectRead(size, start, length, _body_chunks(answer["Body"]))

    def get(self, sha256: str) -> bytes | None:
        """The whole object in memory (small ones only: a snapshot) in one GET, without ``read``'s HEAD first;
        None when there is none."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key(sha256))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        with contextlib.closing(answer["Body"]) as body:
            return body.read()

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key(sha256))


def _error_code(exc) -> str | None:
    """The code of an S3 ``ClientError`` (``NoSuchKey``, ``BucketAlreadyOwnedByYou``...)."""
    return exc.response.get("Error", {}).get("Code")


def _not_found(exc) -> bool:
    """Whether an S3 ``ClientError`` says there is no such object (servers spell it three ways)."""
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


def s3_client(endpoint: str, region: str, access_key: str, secret_key: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )


def read_credentials(path: Path) -> tuple[str, str]:
    """The access key id and secret key: the first two non-empty lines of ``path``."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: needs two lines, the S3 access key id and the secret key")
    return lines[0], lines[1]


def open_objects(section, media_dir: Path, data_dir: Path) -> ObjectStore:
    """The store ``[media]`` selects: the media folder when ``s3_endpoint`` is empty, else the bucket."""
    if not section.s3_endpoint:
        return LocalObjects(media_dir)
    credentials = section.s3_credentials_file
    if not credentials.is_absolute():
        credentials = Path(data_dir) / credentials
    client = s3_client(section.s3_endpoint, section.s3_region, *read_credentials(credentials))
    return S3Objects(client, section.s3_bucket, part_bytes=section.multipart_chunk_mb * MIB)


def _span(size: int, start: int, end: int | None) -> tuple[int, int]:
    """(start, length) of the bytes ``start``..``end`` (inclusive, None = to the end) within ``size``."""
    start = min(max(start, 0), size)
    last = size - 1 if end is None else min(end, size - 1)
    return start, max(0, last - start + 1)


def _chunks(handle: BinaryIO, length: int) -> Iterator[bytes]:
    with handle:
        while length > 0:
            data = handle.read(min(_READ, length))
            if not data:
                return
            length -= len(data)
            yield data


def _body_chunks(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(_READ)
    finally:
        body.close()
