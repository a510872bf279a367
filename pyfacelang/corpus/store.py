"""On-disk corpus: sharded, appendable, resumable, checksummed.

A corpus folder holds `corpus.json` (what built it) and shards
`shard_00000.flc`, ... Each shard is written whole to a temporary file and
renamed into place, so a crash loses at most the shard being written; a
rerun removes leftover temporaries and rebuilds only missing shards.

Shard format (little-endian):
    b"FLCORP01" | u64 index length | index JSON (utf-8) | padding to 64 | clip blobs
The index lists every clip: id, arrays (name -> [offset, dtype, shape],
offsets from the start of the blob area), meta (offset, length of its UTF-8 JSON)
and sha256 over the clip's bytes (arrays, then meta), so `verify` names the
exact clip a flipped byte belongs to. Arrays are read with np.memmap.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import FaceLangError

MAGIC = b"FLCORP01"
ALIGN = 64


class CorpusError(FaceLangError):
    pass


def _pad(n: int) -> int:
    return (-n) % ALIGN


def write_shard(path: Path, clips: list[tuple[str, dict, dict]]) -> int:
    """clips: (id, {name: array}, meta dict). Writes atomically; returns bytes."""
    blobs, index = [], []
    offset = 0

    def append(b: bytes, h) -> int:
        """Add a blob (hashed, then padded to ALIGN); returns its offset."""
        nonlocal offset
        at = offset
        blobs.append(b)
        blobs.append(b"\0" * _pad(at + len(b)))
        h.update(b)
        offset = at + len(b) + _pad(at + len(b))
        return at

    for cid, arrays, meta in clips:
        entry = {"id": cid, "arrays": {}}
        h = hashlib.sha256()
        for name, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            entry["arrays"][name] = [append(a.tobytes(), h), a.dtype.str, list(a.shape)]
        mb = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()
        entry["meta"] = [append(mb, h), len(mb)]
        entry["sha256"] = h.hexdigest()
        index.append(entry)
    head = json.dumps({"version": 1, "clips": index}).encode()
    pre = MAGIC + struct.pack("<Q", len(head)) + head
    pre += b"\0" * _pad(len(pre))
    base = len(pre)
    def fill(f) -> None:
        f.write(pre)
        for b in blobs:
            f.write(b)

    write_atomic(path, fill)
    return base + offset


class Shard:
    """Read access to one shard (index parsed once, arrays memory-mapped)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                magic = f.read(8)
                if magic != MAGIC:
                    raise CorpusError(f"{self.path.name}: not a corpus shard (bad magic)")
                (n,) = struct.unpack("<Q", f.read(8))
                if n > 1 << 30:
                    raise CorpusError(f"{self.path.name}: corrupt shard index length")
                self.index = json.loads(f.read(n))["clips"]
                self.base = 16 + n + _pad(16 + n)  # blob area start
        except (OSError, ValueError, KeyError, struct.error) as e:
            raise CorpusError(f"{self.path.name}: unreadable shard index ({e})") from None
        self._mm = None
        self.by_id = {e["id"]: e for e in self.index}

    def _map(self):
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        return self._mm

    def arrays(self, entry: dict) -> dict:
        mm = self._map()
        out = {}
        for name, (off, dt, shape) in entry["arrays"].items():
            dtype = np.dtype(dt)
            n = int(np.prod(shape)) * dtype.itemsize
            off += self.base
            out[name] = mm[off:off + n].view(dtype).reshape(shape)
        return out

    def meta(self, entry: dict) -> dict:
        off, n = entry["meta"]
        off += self.base
        return json.loads(bytes(self._map()[off:off + n]))

    def check(self, entry: dict) -> bool:
        mm = self._map()
        h = hashlib.sha256()
        for name, (off, dt, shape) in entry["arrays"].items():
            off += self.base
            h.update(mm[off:off + int(np.prod(shape)) * np.dtype(dt).itemsize].tobytes())
        off, n = entry["meta"]
        h.update(mm[self.base + off:self.base + off + n].tobytes())
        return h.hexdigest() == entry["sha256"]


class Corpus:
    """A corpus folder: `Corpus(dir).ids`, `.read(id)`, `.verify()`."""

    def __init__(self, folder):
        self.folder = Path(folder)
        cfg = self.folder / "corpus.json"
        if not cfg.is_file():
            raise CorpusError(f"'{folder}' is not a corpus (no corpus.json)")
        self.config = json.loads(cfg.read_text())
        self.shards = [Shard(p) for p in sorted(self.folder.glob("shard_*.flc"))]
        self._where = {e["id"]: (s, e) for s in self.shards for e in s.index}
        self.ids = list(self._where)

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, cid: str) -> dict:
        """{'params': (T, 55) float32, 'identity': (16,), ..., 'meta': dict}."""
        if cid not in self._where:
            raise CorpusError(f"no clip '{cid}' in {self.folder}")
        shard, e = self._where[cid]
        out = {k: np.asarray(v, dtype=np.float32) if v.dtype.kind == "f" else np.asarray(v)
               for k, v in shard.arrays(e).items()}
        out["meta"] = shard.meta(e)
        return out

    def metas(self):
        for s in self.shards:
            for e in s.index:
                yield e["id"], s.meta(e)

    def verify(self) -> list[str]:
        """Problems found: '<clip id> (<shard>): checksum mismatch', missing shards, ..."""
        bad = []
        expected = self.config.get("shards")
        if expected is not None and len(self.shards) != expected:
            bad.append(f"{len(self.shards)} shards present, {expected} expected (run the build again to finish)")
        for s in self.shards:
            for e in s.index:
                if not s.check(e):
                    bad.append(f"{e['id']} ({s.path.name}): checksum mismatch")
        return bad
