"""The compile cache's size cap (``GRAPHC_CACHE_MAX_BYTES``) and least-recently-used pruning.

An entry is every file of the kernels directory named by one cache key: the module
``<key>.so``, its source ``<key>.c``, and the index files ``<fingerprint>.idx`` naming the key
(runtime/cpu.py).  Its age is the module's mtime, which every load from the cache refreshes
(``cache.touch``), so pruning removes the least recently used entries first.  Lock files are
never removed: filelock keeps a lock's path in place so that its waiters share one inode (they
are empty).

Safe with concurrent processes: an entry is removed only while holding its per-key lock, taken
without waiting (an entry another process is building or has just built and is loading is
skipped), and only when its module's mtime has not changed since the scan (loaded or rebuilt
meanwhile); files vanishing under the scan are ignored.  A process that has loaded a module
keeps using it after the file is removed (the mapping outlives the name on POSIX systems).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path


ENV = "GRAPHC_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_KEY = re.compile(r"[0-9a-f]{64}")
_STALE_TEMP_S = 24 * 3600  # a build never takes a day: older temporaries are a killed writer's


def parse_size(text: str, what: str) -> int:
    """Bytes in ``text``: an integer, or a number with a suffix K, M, G or T (powers of 1024,
    optionally followed by B or iB: ``500M``, ``2GiB``, ``1.5g``).  ``what`` names the setting
    in the error."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{what}={text!r} is not a size: give a number of bytes, or a number "
                         f"with a suffix K, M, G or T (powers of 1024), e.g. 500M or 2G")
    unit = _UNITS[(m[2] or "").lower()]
    return int(m[1]) * unit if m[1].isdigit() else int(float(m[1]) * unit)


def max_bytes() -> int | None:
    """The cap from ``GRAPHC_CACHE_MAX_BYTES`` (default 2 GiB); None when it is 0, ``none`` or
    ``unlimited`` (no cap).  A malformed value raises ValueError naming the variable."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    if text.lower() in ("none", "unlimited"):
        return None
    return parse_size(text, ENV) or None


def format_size(n: int | None) -> str:
    if n is None:
        return "unlimited"
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


@dataclass
class _Entry:
    key: str
    files: list[str] = field(default_factory=list)  # paths (str: no Path per file in the scan)
    bytes: int = 0
    mtime_ns: int = 0  # the module's; the newest file's when there is no module
    has_module: bool = False

    def add(self, path: str, st: os.stat_result) -> None:
        self.files.append(path)
        self.bytes += st.st_size
        if path.endswith(".so"):
            self.has_module, self.mtime_ns = True, st.st_mtime_ns
        elif not self.has_module:
            self.mtime_ns = max(self.mtime_ns, st.st_mtime_ns)


@dataclass
class PruneReport:
    max_bytes: int | None
    before: int  # bytes of the entries before pruning
    after: int
    removed: list[tuple[str, int]] = field(default_factory=list)  # (key, bytes)
    skipped: list[str] = field(default_factory=list)  # keys in use by another process


def _scan(d: Path) -> tuple[dict[str, _Entry], list[tuple[str, os.stat_result]]]:
    """(entries by key without their index files, the index files): one directory read and one
    stat per file.  Stale temporaries of killed writers are removed on the way."""
    entries: dict[str, _Entry] = {}
    indexes = []
    now = time.time()
    try:
        it = list(os.scandir(d))
    except OSError:  # no directory (never used, or cleared meanwhile)
        return entries, indexes
    for de in it:
        name = de.name
        if name.endswith(".lock"):
            continue
        try:
            st = de.stat(follow_symlinks=False)
        except OSError:  # vanished under us
            continue
        path = de.path
        if name.startswith(".") or name.endswith(".tmp") or ".tmp." in name:
            if now - st.st_mtime > _STALE_TEMP_S:
                _unlink(path)
            continue
        stem, _, ext = name.partition(".")
        if not _KEY.fullmatch(stem):
            continue  # not graphc's
        if ext == "idx":
            indexes.append((path, st))
        else:
            entries.setdefault(stem, _Entry(stem)).add(path, st)
    return entries, indexes


def usage(d: Path) -> int:
    """Bytes of the cache entries in kernels directory ``d``."""
    entries, indexes = _scan(d)
    return sum(e.bytes for e in entries.values()) + sum(st.st_size for _, st in indexes)


def prune(d: Path, limit: int | None, keep: frozenset[str] | set[str] = frozenset()) -> PruneReport:
    """Remove the least recently used entries of kernels directory ``d`` until their total is at
    most ``limit`` bytes (None: no cap, nothing removed), never the entries in ``keep`` nor
    those whose lock another process holds."""
    entries, indexes = _scan(d)
    total = sum(e.bytes for e in entries.values()) + sum(st.st_size for _, st in indexes)
    report = PruneReport(limit, total, total)
    if limit is None or total <= limit:
        return report
    for path, st in indexes:  # an index belongs to the module it names (read only when over)
        try:
            with open(path, encoding="ascii") as fh:
                key = fh.read(200).split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            key = ""
        if not _KEY.fullmatch(key):  # damaged: cpu.load_lowered ignores it, nothing to lock
            _unlink(path)
            total -= st.st_size
            continue
        entry = entries.setdefault(key, _Entry(key))
        entry.files.append(path)
        entry.bytes += st.st_size
        if not entry.has_module:
            entry.mtime_ns = max(entry.mtime_ns, st.st_mtime_ns)
    from filelock import FileLock, Timeout  # here: importing it costs ~10 ms per process
    for entry in sorted(entries.values(), key=lambda e: e.mtime_ns):
        if total <= limit:
            break
        if entry.key in keep:
            continue
        lock = FileLock(str(d / f"{entry.key}.lock"))
        try:
            lock.acquire(blocking=False)
        except Timeout:  # being built, or just built and being loaded
            report.skipped.append(entry.key)
            continue
        try:
            if _used_since_scan(d / f"{entry.key}.so", entry):
                continue
            for path in entry.files:
                _unlink(path)
        finally:
            lock.release()
        total -= entry.bytes
        report.removed.append((entry.key, entry.bytes))
    report.after = total
    return report


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:  # removed by a concurrent prune or `graphc cache clear`
        pass


def _used_since_scan(module: Path, entry: _Entry) -> bool:
    """Whether the module was loaded (touched), rebuilt or created since the scan."""
    try:
        mtime_ns = module.stat().st_mtime_ns
    except FileNotFoundError:  # none, or removed meanwhile: the entry's other files can go
        return False
    return not entry.has_module or mtime_ns != entry.mtime_ns
