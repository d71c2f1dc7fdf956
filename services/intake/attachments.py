"""The bytes of a case's files (evidence), sealed in intake's tables.

A cleaned file (services/intake/evidence.py) and its thumbnail are cut into parts of
PART_BYTES, each sealed with AES-GCM under the case's own key (keys.case_key, the key
that also seals the citizen's contact), so destroying that key erases the files as it
erases the contact. Each part's associated data names the attachment, the variant, the
part's number and whether it is the last: parts cannot be swapped between files,
reordered, or the file cut short without the opening failing.

The row and all its parts are written in one transaction, `recorded` false; the Case
aggregate then records AttachmentAdded and the row is marked recorded. A crash between
the two leaves a row the sweep finishes (the event is there) or deletes (it is not)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO
from uuid import UUID

from cryptography.exceptions import InvalidTag

from services.intake.evidence import Cleaned
from services.intake.keys import NONCE_BYTES, case_key, seal, stored_key, unseal
from shared.db import Database

PART_BYTES = 256 * 1024
TAG_BYTES = 16  # AES-GCM's, after each part's ciphertext
FILE, THUMBNAIL = 0, 1
VARIANTS = {"file": FILE, "thumbnail": THUMBNAIL}

DDL = (
    """CREATE TABLE IF NOT EXISTS intake_attachments (
        attachment_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        kind text,
        media_type text,
        size bigint,
        sha256 text,
        removed jsonb,
        thumbnail_type text,
        parts int,
        thumbnail_parts int,
        -- HMAC of the file as it was sent, under the case's key: a retry under the same
        -- Idempotency-Key is told apart from another file, and nobody holding the
        -- original (with its metadata) can confirm it was sent once the key is gone.
        upload_digest text,
        stored_at timestamptz DEFAULT now(),
        recorded boolean NOT NULL DEFAULT false
    )""",
    """CREATE TABLE IF NOT EXISTS intake_attachment_parts (
        attachment_id uuid,
        variant smallint,   -- 0 the file, 1 its thumbnail
        n int,
        sealed bytea NOT NULL,
        PRIMARY KEY (attachment_id, variant, n)
    )""",
    "CREATE INDEX IF NOT EXISTS intake_attachments_case ON intake_attachments (case_id)",
    # The sweep looks for rows a crash left unrecorded; there are few, and none for long.
    "CREATE INDEX IF NOT EXISTS intake_attachments_unrecorded ON intake_attachments (stored_at)"
    " WHERE NOT recorded",
)

class Erased(Exception):
    """The case's key is destroyed: its files cannot be stored nor opened any more."""


def _aad(attachment_id: UUID, variant: int, n: int, last: bool) -> bytes:
    return (b"ourvoice-attachment:" + attachment_id.bytes + bytes([variant])
            + n.to_bytes(4, "big") + (b"\x01" if last else b"\x00"))


def part_count(size: int) -> int:
    """How many parts a file of `size` bytes is cut into; an empty file is one empty part."""
    return max(1, -(-size // PART_BYTES))


def sealed_parts(key: bytes, attachment_id: UUID, variant: int, data: bytes) -> Iterator[bytes]:
    """The data cut into parts and sealed, one at a time (a large file is never held
    twice over, sealed beside plain)."""
    count = part_count(len(data))
    for n in range(count):
        yield seal(key, data[n * PART_BYTES:(n + 1) * PART_BYTES],
                    _aad(attachment_id, variant, n, n == count - 1))


def seal_parts(key: bytes, attachment_id: UUID, variant: int, data: bytes) -> list[bytes]:
    return list(sealed_parts(key, attachment_id, variant, data))


def open_part(key: bytes, attachment_id: UUID, variant: int, n: int, count: int,
              sealed: bytes) -> bytes:
    """Part n of `count`; raises InvalidTag when it is not that part of that file."""
    return unseal(key, sealed, _aad(attachment_id, variant, n, n == count - 1))


@dataclass(frozen=True)
class Stored:
    """What the row says of a stored file."""

    attachment_id: UUID
    case_id: UUID
    kind: str
    media_type: str
    size: int
    sha256: str
    removed: tuple[str, ...]
    thumbnail_type: str | None
    parts: int
    thumbnail_parts: int
    recorded: bool
    upload_digest: str | None = None

    @classmethod
    def of(cls, row: dict) -> Stored:
        return cls(row["attachment_id"], row["case_id"], row["kind"], row["media_type"],
                   row["size"], row["sha256"], tuple(row["removed"] or ()),
                   row["thumbnail_type"], row["parts"], row["thumbnail_parts"] or 0,
                   row["recorded"], row.get("upload_digest"))

    def described(self) -> dict:
        """The answer to an upload (201)."""
        return {"attachment_id": str(self.attachment_id), "kind": self.kind,
                "media_type": self.media_type, "size": self.size, "sha256": self.sha256,
                "removed": list(self.removed)}

    def variant(self, name: str) -> tuple[int, str, int] | None:
        """(variant, media type, parts) of "file" or "thumbnail"; None if there is none."""
        if name == "thumbnail":
            if not self.thumbnail_type or not self.thumbnail_parts:
                return None
            return THUMBNAIL, self.thumbnail_type, self.thumbnail_parts
        return FILE, self.media_type, self.parts


def _row(cursor, attachment_id: UUID) -> dict | None:
    cursor.execute("SELECT * FROM intake_attachments WHERE attachment_id = %s", (attachment_id,))
    return cursor.fetchone()


def lock(cursor, attachment_id: UUID) -> None:
    """Held while a file is stored, recorded or swept, until the transaction ends."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (str(attachment_id),))


def try_lock(cursor, attachment_id: UUID) -> bool:
    cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS locked",
                   (str(attachment_id),))
    return cursor.fetchone()["locked"]


def upload_digest(key: bytes, source: BinaryIO) -> str:
    """The HMAC of an upload as sent, read a part at a time."""
    digest = hmac.new(key, b"ourvoice-upload:", hashlib.sha256)
    source.seek(0)
    while chunk := source.read(PART_BYTES):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


def store(cursor, key: bytes, case_id: UUID, attachment_id: UUID, cleaned: Cleaned,
          digest: str) -> Stored:
    """The row and every part, in the caller's transaction. Stored before (a retry), the
    row as it was stored then, and nothing is written."""
    lock(cursor, attachment_id)
    existing = _row(cursor, attachment_id)
    if existing is not None:
        return Stored.of(existing)
    thumbnail = cleaned.thumbnail or b""
    cursor.execute(
        """INSERT INTO intake_attachments (attachment_id, case_id, kind, media_type, size,
             sha256, removed, thumbnail_type, parts, thumbnail_parts, upload_digest)
           VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)""",
        (attachment_id, case_id, cleaned.kind, cleaned.media_type, len(cleaned.data),
         hashlib.sha256(cleaned.data).hexdigest(), _json(cleaned.removed),
         cleaned.thumbnail_type if thumbnail else None, part_count(len(cleaned.data)),
         part_count(len(thumbnail)) if thumbnail else 0, digest),
    )
    with cursor.copy("COPY intake_attachment_parts (attachment_id, variant, n, sealed) "
                     "FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "int2", "int4", "bytea"])
        for variant, data in ((FILE, cleaned.data), (THUMBNAIL, thumbnail)):
            if variant == THUMBNAIL and not data:
                continue
            for n, sealed in enumerate(sealed_parts(key, attachment_id, variant, data)):
                copy.write_row((attachment_id, variant, n, sealed))
    return Stored.of(_row(cursor, attachment_id))


def _json(removed) -> str:
    return json.dumps(list(removed), ensure_ascii=False)


def row(cursor, attachment_id: UUID) -> Stored | None:
    found = _row(cursor, attachment_id)
    return None if found is None else Stored.of(found)


def sealed_part(cursor, attachment_id: UUID, variant: int, n: int) -> bytes | None:
    cursor.execute("SELECT sealed FROM intake_attachment_parts "
                   "WHERE attachment_id = %s AND variant = %s AND n = %s",
                   (attachment_id, variant, n))
    found = cursor.fetchone()
    return None if found is None else bytes(found["sealed"])


def plain_size(cursor, attachment_id: UUID, variant: int, count: int) -> int:
    """The bytes of a stored variant, from the length of its last sealed part."""
    cursor.execute("SELECT octet_length(sealed) AS length FROM intake_attachment_parts "
                   "WHERE attachment_id = %s AND variant = %s AND n = %s",
                   (attachment_id, variant, count - 1))
    found = cursor.fetchone()
    overhead = NONCE_BYTES + TAG_BYTES
    return (count - 1) * PART_BYTES + (found["length"] - overhead if found else 0)


def mark_recorded(cursor, attachment_id: UUID) -> None:
    cursor.execute("UPDATE intake_attachments SET recorded = true WHERE attachment_id = %s",
                   (attachment_id,))


def delete(cursor, attachment_id: UUID) -> None:
    cursor.execute("DELETE FROM intake_attachment_parts WHERE attachment_id = %s",
                   (attachment_id,))
    cursor.execute("DELETE FROM intake_attachments WHERE attachment_id = %s", (attachment_id,))


def delete_parts_of_case(cursor, case_id: UUID) -> int:
    """Erasure: every part of the case's files goes; the rows stay (their metadata is in
    the events anyway), so a later reader is told the file was erased, not that it never
    was. Returns how many parts were deleted."""
    cursor.execute("DELETE FROM intake_attachment_parts WHERE attachment_id IN "
                   "(SELECT attachment_id FROM intake_attachments WHERE case_id = %s)",
                   (case_id,))
    return cursor.rowcount


def of_case(cursor, case_id: UUID) -> dict[str, Stored]:
    """The case's stored files, by attachment id (as the events name them)."""
    cursor.execute("SELECT * FROM intake_attachments WHERE case_id = %s", (case_id,))
    return {str(found["attachment_id"]): Stored.of(found) for found in cursor.fetchall()}


def references(cursor, case_ids: list) -> dict:
    """The recorded files of these cases as (attachment_id, kind, size), by case id."""
    cursor.execute("SELECT case_id, attachment_id, kind, size FROM intake_attachments "
                   "WHERE case_id = ANY(%s) AND recorded ORDER BY stored_at", (case_ids,))
    found: dict = {}
    for ref in cursor.fetchall():
        found.setdefault(ref["case_id"], []).append(
            {"attachment_id": str(ref["attachment_id"]), "kind": ref["kind"],
             "size": ref["size"]})
    return found


def variant_named(variant) -> str | None:
    """"file" or "thumbnail", from either name or number; None for anything else."""
    if variant in (None, "", "file", FILE, "0"):
        return "file"
    if variant in ("thumbnail", THUMBNAIL, "1"):
        return "thumbnail"
    return None


def has_files(cursor, case_id: UUID) -> bool:
    cursor.execute("SELECT 1 FROM intake_attachments WHERE case_id = %s LIMIT 1", (case_id,))
    return cursor.fetchone() is not None


def unrecorded(cursor, older_than: timedelta, limit: int = 100) -> list[Stored]:
    cursor.execute("SELECT * FROM intake_attachments WHERE NOT recorded "
                   "AND stored_at < now() - %s ORDER BY stored_at LIMIT %s",
                   (older_than, limit))
    return [Stored.of(found) for found in cursor.fetchall()]


class Files:
    """A case's files in intake's tables, for the adapters: each call a short
    transaction of its own, so a slow reader never holds a connection between parts."""

    def __init__(self, db: Database, master: bytes):
        self.db = db
        self.master = master

    def store(self, case_id: UUID, attachment_id: UUID, cleaned: Cleaned,
              digest: str) -> Stored:
        """Raises Erased once the case's key is destroyed."""
        with self.db.transaction() as cursor:
            key = case_key(cursor, self.master, case_id)
            if key is None:
                raise Erased("this case's personal data and files were erased")
            return store(cursor, key, case_id, attachment_id, cleaned, digest)

    def digest(self, case_id: UUID, source: BinaryIO) -> str:
        """The upload's HMAC under the case's key (made on first use); raises Erased."""
        with self.db.transaction() as cursor:
            key = case_key(cursor, self.master, case_id)
        if key is None:
            raise Erased("this case's personal data and files were erased")
        return upload_digest(key, source)

    def row(self, attachment_id: UUID) -> Stored | None:
        with self.db.transaction() as cursor:
            return row(cursor, attachment_id)

    def key(self, case_id: UUID) -> bytes:
        """The case's key for reading; raises Erased when it is gone."""
        with self.db.transaction() as cursor:
            key = stored_key(cursor, self.master, case_id)
        if key is None:
            raise Erased("this case's files were erased")
        return key

    def part(self, stored: Stored, variant: int, n: int, count: int,
             key: bytes | None = None) -> bytes:
        """Part n, opened; raises Erased when the key or the part is gone."""
        key = key or self.key(stored.case_id)
        with self.db.transaction() as cursor:
            sealed = sealed_part(cursor, stored.attachment_id, variant, n)
        if sealed is None:
            raise Erased("this file's parts were erased")
        try:
            return open_part(key, stored.attachment_id, variant, n, count, sealed)
        except InvalidTag:
            raise Erased("this file's part does not open with the case's key") from None

    def stream(self, stored: Stored, variant: int, count: int, key: bytes) -> Iterator[bytes]:
        for n in range(count):
            yield self.part(stored, variant, n, count, key)

    def size(self, stored: Stored, variant: int, count: int) -> int:
        if variant == FILE:
            return stored.size
        with self.db.transaction() as cursor:
            return plain_size(cursor, stored.attachment_id, variant, count)

    def mark_recorded(self, attachment_id: UUID) -> None:
        with self.db.transaction() as cursor:
            mark_recorded(cursor, attachment_id)

    def delete(self, attachment_id: UUID) -> None:
        with self.db.transaction() as cursor:
            delete(cursor, attachment_id)

    def unrecorded(self, older_than: timedelta) -> list[Stored]:
        with self.db.transaction() as cursor:
            return unrecorded(cursor, older_than)
