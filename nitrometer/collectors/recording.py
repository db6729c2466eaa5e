"""The recording file: raw pages with timestamps and device identity, append only.

Layout (little-endian):
    header   b"NMREC\\r\\n\\x1a" (8 bytes; the CR LF and ^Z catch text-mode mangling), u32 version
    record   u8 type, u32 payload length, payload, u32 CRC32 of type + length + payload
    type 1   device: u16 index, then the Device fields as UTF-8 JSON (once per device)
    type 2   page: u16 device index, f64 wall time, f64 monotonic time, zlib-compressed page
             (at most MAX_PAGE bytes once decompressed, MAX_PAGES_BYTES for all of a file's)
    type 3   context (version 2): UTF-8 JSON of what the limits need, {"instance_type": ...,
             "volumes": {serial: {"type", "iops", "throughput"}}}; later ones add to earlier
Version 1 files (no context) still read.
A crash mid-write leaves a partial last record: readers stop at the last whole one and say
how many bytes they dropped.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from nitrometer.collectors.base import Device
from nitrometer.errors import NitrometerError

MAGIC = b"NMREC\r\n\x1a"
VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER = struct.Struct("<8sI")
RECORD_HEAD = struct.Struct("<BI")
CRC = struct.Struct("<I")
PAGE_HEAD = struct.Struct("<Hdd")
DEVICE_HEAD = struct.Struct("<H")
TYPE_DEVICE = 1
TYPE_PAGE = 2
TYPE_CONTEXT = 3
MAX_PAYLOAD = 1 << 20  # a page is 8 KiB; anything near this is corruption
MAX_PAGE = 8192  # a page decompresses to at most this (the detailed log page's length)
# All the pages of one file, decompressed: about 36 h of one instance-store device at 1 Hz.
# Replay holds pages of one device while it looks for another's, so this bounds its memory.
MAX_PAGES_BYTES = 1 << 30

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageRecord:
    device_index: int
    wall: float
    monotonic: float
    page: bytes


class RecordingWriter:
    """Writes a new recording; each record goes out in one write, unbuffered.

    A failed write (a full disk, /dev/full, an I/O error) is one NitrometerError; the file
    is cut back to its last whole record, so what was written still replays.
    """

    def __init__(self, path: str):
        self.path = path
        self.pages = 0
        self.pages_bytes = 0  # decompressed
        self._good = 0  # end of the last whole record
        try:
            self._file = open(path, "wb", buffering=0)
        except OSError as exc:
            raise NitrometerError(f"cannot write {path}: {exc.strerror}") from None
        self._devices: dict[Device, int] = {}
        self._put(HEADER.pack(MAGIC, VERSION))

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[self._file.write(view):]
        except OSError as exc:
            self._cut_back()
            raise NitrometerError(f"cannot write {self.path}: {exc.strerror}; "
                                  f"{self.pages} pages kept") from None
        self._good += len(data)

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._file.fileno(), self._good)
        except OSError:
            pass  # not a regular file (a pipe, /dev/full): nothing to cut

    def _write(self, rtype: int, payload: bytes) -> None:
        head = RECORD_HEAD.pack(rtype, len(payload))
        self._put(head + payload + CRC.pack(zlib.crc32(head + payload)))

    def device_index(self, device: Device) -> int:
        index = self._devices.get(device)
        if index is None:
            index = len(self._devices)
            fields = json.dumps(dataclasses.asdict(device), sort_keys=True).encode()
            self._write(TYPE_DEVICE, DEVICE_HEAD.pack(index) + fields)
            self._devices[device] = index
        return index

    def add_context(self, context: dict) -> None:
        """What replay needs besides the pages: the instance type, the volumes' limits."""
        self._write(TYPE_CONTEXT, json.dumps(context, sort_keys=True).encode())

    def add_page(self, device: Device, page: bytes, monotonic: float, wall: float) -> None:
        if len(page) > MAX_PAGE:
            raise NitrometerError(f"cannot record a {len(page)}-byte page of {device.name}: "
                                  f"a log page is at most {MAX_PAGE} bytes")
        if self.pages_bytes + len(page) > MAX_PAGES_BYTES:
            raise NitrometerError(f"{self.path}: a recording holds at most "
                                  f"{MAX_PAGES_BYTES >> 30} GiB of pages; {self.pages} pages "
                                  f"kept (record the rest to another file)")
        index = self.device_index(device)
        self._write(TYPE_PAGE, PAGE_HEAD.pack(index, wall, monotonic) + zlib.compress(page, 6))
        self.pages += 1
        self.pages_bytes += len(page)

    def flush(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS):  # a pipe or device: no fsync
                raise NitrometerError(f"cannot write {self.path}: {exc.strerror}; "
                                      f"{self.pages} pages kept") from None

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Recording:
    """A recording opened for reading: its devices, its pages, and what was lost at its end."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._file = open(path, "rb")
        except OSError as exc:
            raise NitrometerError(f"cannot read {path}: {exc.strerror}") from None
        head = self._file.read(HEADER.size)
        if len(head) < HEADER.size or not head.startswith(MAGIC):
            self._file.close()
            raise NitrometerError(f"{path} is not a nitrometer recording")
        version = HEADER.unpack(head)[1]
        if version not in READABLE_VERSIONS:
            self._file.close()
            raise NitrometerError(f"{path}: recording format version {version} is not "
                                  f"supported (this nitrometer reads versions "
                                  f"{' and '.join(map(str, READABLE_VERSIONS))})")
        self.size = os.fstat(self._file.fileno()).st_size
        self.devices: list[Device] = []
        self.context: dict = {}  # instance type and volume limits, when recorded
        self.pages = 0
        self.end = self._scan()
        self.lost_bytes = self.size - self.end
        self.warning = ""
        if self.lost_bytes:
            self.warning = (f"{path}: the recording is cut short; the last {self.lost_bytes} "
                            f"bytes after record {self.pages + len(self.devices)} were dropped")
            log.warning(self.warning)

    def _records(self, limit: int | None = None) -> Iterator[tuple[int, bytes, int]]:
        """(type, payload, end offset) of each whole record with a good CRC."""
        self._file.seek(HEADER.size)
        offset = HEADER.size
        while limit is None or offset < limit:
            head = self._file.read(RECORD_HEAD.size)
            if len(head) < RECORD_HEAD.size:
                return
            rtype, length = RECORD_HEAD.unpack(head)
            if length > MAX_PAYLOAD or rtype not in (TYPE_DEVICE, TYPE_PAGE, TYPE_CONTEXT):
                return
            payload = self._file.read(length)
            crc = self._file.read(CRC.size)
            if len(payload) < length or len(crc) < CRC.size:
                return
            if CRC.unpack(crc)[0] != zlib.crc32(head + payload):
                return
            offset += RECORD_HEAD.size + length + CRC.size
            yield rtype, payload, offset

    def _page(self, payload: bytes) -> bytes:
        """A page record's page, decompressed no further than a page can be."""
        inflate = zlib.decompressobj()
        try:
            page = inflate.decompress(payload[PAGE_HEAD.size:], MAX_PAGE + 1)
        except zlib.error:
            page, inflate = b"", None
        if inflate is None or not inflate.eof or len(page) > MAX_PAGE:
            self._file.close()
            raise NitrometerError(f"{self.path}: page record {self.pages + 1} is not a "
                                  f"compressed page of at most {MAX_PAGE} bytes")
        return page

    def _scan(self) -> int:
        total = 0  # decompressed bytes of every page
        end = HEADER.size
        for rtype, payload, offset in self._records():
            if rtype == TYPE_DEVICE:
                index = DEVICE_HEAD.unpack_from(payload)[0]
                try:
                    fields = json.loads(payload[DEVICE_HEAD.size:])
                    device = Device(**fields)
                except (ValueError, TypeError):
                    break
                if index != len(self.devices):
                    break
                self.devices.append(device)
            elif rtype == TYPE_CONTEXT:
                try:
                    context = json.loads(payload)
                except ValueError:
                    break
                if not isinstance(context, dict) or \
                        not isinstance(context.get("volumes", {}), dict):
                    break
                volumes = {**self.context.get("volumes", {}), **context.get("volumes", {})}
                self.context.update(context, volumes=volumes)
            else:
                index, wall, mono = PAGE_HEAD.unpack_from(payload)
                if index >= len(self.devices) or not (math.isfinite(wall)
                                                      and math.isfinite(mono)):
                    break
                total += len(self._page(payload))
                if total > MAX_PAGES_BYTES:
                    self._file.close()
                    raise NitrometerError(f"{self.path}: its pages decompress to more than "
                                          f"{MAX_PAGES_BYTES >> 30} GiB, more than a "
                                          f"recording holds")
                self.pages += 1
            end = offset
        return end

    def __iter__(self) -> Iterator[PageRecord]:
        for rtype, payload, _ in self._records(self.end):
            if rtype == TYPE_PAGE:
                index, wall, mono = PAGE_HEAD.unpack_from(payload)
                yield PageRecord(index, wall, mono, self._page(payload))

    def close(self) -> None:
        self._file.close()
