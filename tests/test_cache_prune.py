"""The compile cache's size cap: GRAPHC_CACHE_MAX_BYTES, least-recently-used pruning (a load
touches the entry), the per-key locks it respects, ``graphc cache prune`` and ``list``."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import filelock
import pytest

import graphc as gc
from graphc import cli
from graphc.errors import BackendUnavailable
from graphc.runtime import cache, cache_limit

try:
    gc.compile([], gc.constant(1.0) * 2, backend="c")
    HAVE_C = True
except BackendUnavailable:
    HAVE_C = False

needs_c = pytest.mark.skipif(not HAVE_C, reason="no C compiler")
ENV = "GRAPHC_CACHE_MAX_BYTES"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__)))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV, raising=False)
    return tmp_path / "cache"


def key(i):
    return f"{i:04x}" * 16  # distinct in the 16 characters the CLI prints


def fake_entry(d, i, age_s, so_bytes=1000, c_bytes=100, index=True):
    """A cache entry as cpu.build_module leaves it: module, source, lock, index file."""
    d.mkdir(parents=True, exist_ok=True)
    k = key(i)
    (d / f"{k}.so").write_bytes(b"m" * so_bytes)
    (d / f"{k}.c").write_bytes(b"c" * c_bytes)
    (d / f"{k}.lock").write_bytes(b"")
    files = [d / f"{k}.so", d / f"{k}.c"]
    if index:
        fp = key(i + 0xF000)
        (d / f"{fp}.idx").write_text(f"{k} {fp}")
        files.append(d / f"{fp}.idx")
    t = time.time() - age_s
    for p in files:
        os.utime(p, (t, t))
    return k


def present(d):
    return {p.stem for p in d.glob("*.so")}


# ---- the setting --------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("1234", 1234), ("500M", 500 * 2 ** 20), ("2G", 2 * 2 ** 30), ("2g", 2 * 2 ** 30),
    ("1.5k", 1536), ("2GiB", 2 * 2 ** 30), (" 10 KB ", 10240), ("7b", 7), ("1T", 2 ** 40),
])
def test_sizes_parse(monkeypatch, text, expected):
    monkeypatch.setenv(ENV, text)
    assert cache_limit.max_bytes() == expected


@pytest.mark.parametrize("text", ["0", "none", "None", "UNLIMITED", "0M"])
def test_zero_or_none_disables_the_cap(monkeypatch, text):
    monkeypatch.setenv(ENV, text)
    assert cache_limit.max_bytes() is None


def test_default_cap_is_two_gib(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert cache_limit.max_bytes() == 2 * 2 ** 30
    monkeypatch.setenv(ENV, "")
    assert cache_limit.max_bytes() == 2 * 2 ** 30


@pytest.mark.parametrize("text", ["lots", "-5", "5X", "1e9", "2 G B", "M", "1.2.3"])
def test_bad_values_name_the_variable_and_value(monkeypatch, text):
    monkeypatch.setenv(ENV, text)
    with pytest.raises(ValueError) as e:
        cache_limit.max_bytes()
    assert ENV in str(e.value) and repr(text) in str(e.value)


@needs_c
def test_bad_value_fails_the_compile_before_building(cache_dir, monkeypatch):
    monkeypatch.setenv(ENV, "2 gigs")
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], gc.exp(x) + 0.25, backend="c")
    with pytest.raises(ValueError, match=f"{ENV}='2 gigs'"):
        f(np.ones((2, 3), np.float32))
    assert not list((cache_dir / "kernels").glob("*.so"))


# ---- pruning (fake entries: deterministic ages and sizes) ----------------------------------

def test_prune_removes_least_recently_used_until_under_the_cap(tmp_path):
    d = tmp_path / "kernels"
    old, mid, new = (fake_entry(d, i, age) for i, age in ((1, 300), (2, 200), (3, 100)))
    stray = d / "notes.txt"
    stray.write_text("not graphc's")
    per_entry = cache_limit.usage(d) // 3
    report = cache_limit.prune(d, 2 * per_entry)
    assert [k for k, _ in report.removed] == [old]
    assert report.before == 3 * per_entry and report.after == 2 * per_entry
    assert present(d) == {mid, new}
    # the whole entry went: source and index file too; its lock file and foreign files stay
    assert not (d / f"{old}.c").exists()
    assert sorted(p.read_text().split()[0] for p in d.glob("*.idx")) == sorted([mid, new])
    assert (d / f"{old}.lock").exists() and stray.exists()
    assert cache_limit.usage(d) == 2 * per_entry


def test_under_the_cap_nothing_is_removed_and_no_index_is_read(tmp_path, monkeypatch):
    d = tmp_path / "kernels"
    for i in range(3):
        fake_entry(d, i, 100 * i)
    monkeypatch.setattr(cache_limit, "open",  # shadows the builtin in the module
                        lambda *a, **k: pytest.fail("read an index under the cap"), raising=False)
    report = cache_limit.prune(d, cache_limit.usage(d))
    assert report.removed == [] and report.before == report.after
    assert len(present(d)) == 3
    assert cache_limit.prune(d, None).removed == []  # no cap


def test_the_entry_just_written_is_kept_even_over_the_cap(tmp_path):
    d = tmp_path / "kernels"
    keys = [fake_entry(d, i, age) for i, age in ((1, 50), (2, 10), (3, 500))]
    report = cache_limit.prune(d, 0, keep={keys[2]})  # the oldest, but just written
    assert present(d) == {keys[2]}
    assert [k for k, _ in report.removed] == [keys[0], keys[1]]


def test_entries_locked_by_another_process_are_skipped(tmp_path):
    d = tmp_path / "kernels"
    old, mid, new = (fake_entry(d, i, age) for i, age in ((1, 300), (2, 200), (3, 100)))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from filelock import FileLock
            with FileLock({str(d / f"{old}.lock")!r}):
                print("held", flush=True)
                sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        per_entry = cache_limit.usage(d) // 3
        report = cache_limit.prune(d, 2 * per_entry)
        assert report.skipped == [old]
        assert [k for k, _ in report.removed] == [mid]  # the next oldest instead
        assert present(d) == {old, new}
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    # released: the next prune takes it
    assert [k for k, _ in cache_limit.prune(d, 0).removed] == [old, new]


def test_an_entry_used_between_scan_and_lock_is_kept(tmp_path, monkeypatch):
    # another process loads (touches) the oldest entry after the scan: it is no longer the
    # least recently used, so it must stay
    d = tmp_path / "kernels"
    old, new = fake_entry(d, 1, 300), fake_entry(d, 2, 100)
    real = filelock.FileLock  # prune imports it when it runs

    class LoadedMeanwhile(real):
        def acquire(self, *a, **k):
            if old in str(self.lock_file):
                os.utime(d / f"{old}.so")
            return super().acquire(*a, **k)

    monkeypatch.setattr(filelock, "FileLock", LoadedMeanwhile)
    report = cache_limit.prune(d, 0)
    assert [k for k, _ in report.removed] == [new]
    assert present(d) == {old}


def test_files_vanishing_under_the_prune_are_tolerated(tmp_path, monkeypatch):
    # a concurrent prune (or `cache clear`) removes entries between the scan and the lock
    d = tmp_path / "kernels"
    keys = [fake_entry(d, i, 100 * (5 - i)) for i in range(4)]
    real = filelock.FileLock  # prune imports it when it runs

    class RacedBy(real):
        def acquire(self, *a, **k):
            for p in d.glob(f"{keys[0]}.*"):
                if p.suffix != ".lock":
                    p.unlink()
            return super().acquire(*a, **k)

    monkeypatch.setattr(filelock, "FileLock", RacedBy)
    report = cache_limit.prune(d, 0)
    assert present(d) == set() and not list(d.glob("*.c")) and not list(d.glob("*.idx"))
    assert [k for k, _ in report.removed] == keys
    assert cache_limit.prune(tmp_path / "missing", 0).removed == []


def test_stale_temporaries_are_removed_fresh_ones_kept(tmp_path):
    d = tmp_path / "kernels"
    fake_entry(d, 1, 10)
    stale, fresh = d / f".{key(9)}.12.34.tmp.so", d / f".{key(8)}.12.34.tmp.so"
    stale_idx = d / f"{key(7)}.12.34.tmp"
    for p in (stale, fresh, stale_idx):
        p.write_bytes(b"x" * 10)
    for p in (stale, stale_idx):
        os.utime(p, (time.time() - 2 * 86400,) * 2)
    cache_limit.prune(d, 0)
    assert fresh.exists() and not stale.exists() and not stale_idx.exists()


def test_a_new_entry_is_loaded_before_another_process_can_prune_it(cache_dir, monkeypatch):
    # another process prunes everything between this one's build and its load: the entry's
    # lock is still held then, so the prune skips it and the load finds the module
    monkeypatch.setenv(ENV, "1")
    d = cache.kernel_cache_dir()
    skipped = []

    def validate(p):
        skipped.append(cache_limit.prune(d, 0).skipped)
        return p.read_bytes()

    path, value = cache.get_or_build(key(5), ".so", lambda tmp: tmp.write_bytes(b"mod"), validate)
    assert value == b"mod" and skipped == [[key(5)]] and path.exists()
    # a hit marks the entry used
    os.utime(path, (time.time() - 500,) * 2)
    assert cache.get_or_build(key(5), ".so", pytest.fail, lambda p: p.read_bytes())[1] == b"mod"
    assert os.stat(path).st_mtime > time.time() - 60


def test_other_directories_are_neither_touched_nor_pruned(tmp_path, monkeypatch):
    # the GEMM core objects (runtime/gemm_core.py) live elsewhere: their mtime says when they
    # were built, and they are not part of the capped module cache
    monkeypatch.setenv(ENV, "1")
    d = tmp_path / "core"
    d.mkdir()
    for i in (1, 2):
        cache.get_or_build(key(i), ".o", lambda tmp: tmp.write_bytes(b"obj"), lambda p: None,
                           directory=d)
    assert sorted(p.stem for p in d.glob("*.o")) == [key(1), key(2)]
    old = time.time() - 500
    os.utime(d / f"{key(1)}.o", (old, old))
    cache.get_or_build(key(1), ".o", pytest.fail, lambda p: None, directory=d)
    assert os.stat(d / f"{key(1)}.o").st_mtime == pytest.approx(old)


# ---- with the compiler: touch on load, the cap after each build, pruned modules still run ----

def _graphs():
    x = gc.placeholder((None, 4), name="x")
    exprs = [gc.tanh(x) * 2, gc.sigmoid(x) + 3, gc.exp(x) - 1, gc.relu(x) * 0.5 + x]
    refs = [lambda a: np.tanh(a) * 2, lambda a: 1 / (1 + np.exp(-a)) + 3,
            lambda a: np.exp(a) - 1, lambda a: np.maximum(a, 0) * 0.5 + a]
    return x, exprs, refs


def _run(f, ref, a):
    np.testing.assert_allclose(f(a), ref(a), rtol=1e-5, atol=1e-6)


@needs_c
def test_a_cache_hit_counts_as_use(cache_dir, monkeypatch):
    monkeypatch.setenv(ENV, "unlimited")
    x, exprs, refs = _graphs()
    a = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    for e, r in zip(exprs[:2], refs[:2]):
        _run(gc.compile([x], e, backend="c"), r, a)
    d = cache_dir / "kernels"
    first, second = (e["key"] for e in sorted(cache.list_entries(), key=lambda e: e["mtime"]))
    for k, age in ((first, 300), (second, 100)):  # the first compiled is the oldest
        os.utime(d / f"{k}.so", (time.time() - age,) * 2)
    # a fresh compile of the first graph loads it from the disk cache: now the most recent
    _run(gc.compile([x], gc.tanh(x) * 2, backend="c"), refs[0], a)
    assert os.stat(d / f"{first}.so").st_mtime > time.time() - 60
    report = cache.prune(cache.kernels_usage() - 1)
    assert [k for k, _ in report.removed] == [second]
    assert present(d) == {first}


@needs_c
def test_the_cap_holds_after_each_build_and_pruned_modules_still_run(cache_dir, monkeypatch):
    x, exprs, refs = _graphs()
    a = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    d = cache_dir / "kernels"
    monkeypatch.setenv(ENV, "1")  # smaller than any module: only the one just written stays
    fns = []
    for e, r in zip(exprs, refs):
        f = gc.compile([x], e, backend="c")
        _run(f, r, a)
        fns.append(f)
        assert len(present(d)) == 1  # the one just built
    # every earlier module was deleted on disk and still runs in this process (Linux keeps a
    # mapped file alive); so does the last after pruning everything
    assert cache.prune(0).after == 0 and present(d) == set()
    for f, r in zip(fns, refs):
        _run(f, r, a)
    # compiling one again rebuilds it
    _run(gc.compile([x], exprs[0], backend="c"), refs[0], a)
    assert len(present(d)) == 1
    # a cap of two modules' size keeps the two most recent
    monkeypatch.setenv(ENV, str(int(cache.kernels_usage() * 2.5)))
    for e, r in zip(exprs[1:], refs[1:]):
        time.sleep(0.01)  # distinct mtimes
        _run(gc.compile([x], e, backend="c"), r, a)
    assert cache.kernels_usage() <= cache_limit.max_bytes()
    assert len(present(d)) == 2


CONCURRENT = textwrap.dedent("""
    import sys
    import numpy as np, graphc as gc
    which = int(sys.argv[1])
    x = gc.placeholder((None, 5), name="x")
    a = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    for rnd in range(2):
        for i in range(3):
            c = float(which * 10 + i + 1)
            f = gc.compile([x], gc.tanh(x * c) + c, backend="c")
            got = f(a)
            assert np.allclose(got, np.tanh(a * c) + c, rtol=1e-5, atol=1e-6), (which, i, got)
    print("ok", which)
""")


@needs_c
def test_two_processes_with_a_tiny_cap(cache_dir):
    # each prunes the other's modules (and its own) while they load and build: no crash, no
    # wrong result; the second round loads what survived and rebuilds what was pruned
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), PYTHONPATH=REPO,
               GRAPHC_CACHE_MAX_BYTES="1", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(w)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert [o[0].split() for o in outs] == [["ok", "1"], ["ok", "2"]]
    assert len(present(cache_dir / "kernels")) <= 2  # each process's last build at most


# ---- the command line ----------------------------------------------------------------------

def test_cli_prune_prints_what_it_removed_and_the_sizes(cache_dir, capsys):
    d = cache_dir / "kernels"
    old, mid, new = (fake_entry(d, i, age) for i, age in ((1, 300), (2, 200), (3, 100)))
    per_entry = cache_limit.usage(d) // 3
    assert cli.main(["cache", "prune", "--max-bytes", str(2 * per_entry)]) == 0
    out = capsys.readouterr().out
    assert f"removed {old[:16]}" in out and mid[:16] not in out
    fs = cache_limit.format_size
    assert (f"removed 1 compiled module(s) from {d}: {fs(3 * per_entry)} -> "
            f"{fs(2 * per_entry)} (cap {fs(2 * per_entry)})") in out
    assert present(d) == {mid, new}
    # the default is the environment's cap
    os.environ[ENV] = "1"
    try:
        assert cli.main(["cache", "prune"]) == 0
    finally:
        del os.environ[ENV]
    out = capsys.readouterr().out
    assert "removed 2 compiled module(s)" in out and "-> 0 B (cap 1 B)" in out
    assert present(d) == set()


def test_cli_list_shows_total_and_cap(cache_dir, capsys, monkeypatch):
    d = cache_dir / "kernels"
    fake_entry(d, 1, 10, so_bytes=2048, c_bytes=1024, index=False)
    monkeypatch.setenv(ENV, "500M")
    assert cli.main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"1 compiled module(s) in {d}: 3.0 KiB (cap 500.0 MiB, {ENV})" in out
    monkeypatch.setenv(ENV, "none")
    assert cli.main(["cache", "list"]) == 0
    assert "(cap unlimited" in capsys.readouterr().out


def test_cli_rejects_bad_sizes(cache_dir, capsys, monkeypatch):
    assert cli.main(["cache", "prune", "--max-bytes", "huge"]) == 2
    assert "--max-bytes='huge' is not a size" in capsys.readouterr().err
    monkeypatch.setenv(ENV, "12 parsecs")
    assert cli.main(["cache", "list"]) == 2
    assert f"{ENV}='12 parsecs' is not a size" in capsys.readouterr().err
    assert cli.main(["cache", "list", "--max-bytes", "1G"]) == 2
    assert "prune only" in capsys.readouterr().err
