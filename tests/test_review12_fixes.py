"""Regressions for bugs found by the twelfth adversarial review (unusual inputs, copies of
graphs and functions, the compile cache, the environment)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as gc
from backends import C, c_available


def _env(cache_dir, **extra):
    return dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), **extra,
                PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))


# -- 1. a cache entry is the module of its own graph, whole --------------------------------------

def _text_section(path):
    """(offset, size) of the .text section of an ELF file."""
    import struct
    data = open(path, "rb").read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def sh(i):
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
    names = sh(shstrndx)[4]
    for i in range(shnum):
        name, _, _, _, off, size = sh(i)
        if data[names + name:names + name + 6] == b".text\0":
            return off, size
    raise AssertionError("no .text")


@pytest.mark.skipif(not c_available() or not sys.platform.startswith("linux"),
                    reason="C compiler and ELF modules")
def test_cache_entry_of_another_graph_or_damaged_code_is_rebuilt(tmp_path, monkeypatch):
    # a valid graphc module copied over another graph's entry was loaded and run (exp(x) + 1
    # returned 3 * x), and an entry with damaged code passed every check and killed the process
    # in dlopen (SIGILL): the entry now carries its key and a digest, checked before dlopen
    x = gc.placeholder((4,), name="x")
    ones = np.ones(4, np.float32)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "first"))
    fa = gc.compile([x], gc.exp(x) + 1, backend="c")
    fa(ones)
    fb = gc.compile([x], x * 3, backend="c")
    fb(ones)
    a, b = fa._exe._current().path, fb._exe._current().path
    # a second cache directory (a path not loaded yet in this process) with A's entry replaced
    swapped = tmp_path / "swapped"
    shutil.copytree(a.parent, swapped / "kernels")
    shutil.copyfile(b, swapped / "kernels" / a.name)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(swapped))
    again = gc.compile([x], gc.exp(x) + 1, backend="c")
    np.testing.assert_allclose(again(ones), np.full(4, np.e + 1), rtol=1e-6)
    assert again._exe._current().path == swapped / "kernels" / a.name  # rebuilt in place
    # damaged code: in a child process (without the check it dies)
    damaged = tmp_path / "damaged"
    shutil.copytree(a.parent, damaged / "kernels")
    entry = damaged / "kernels" / a.name
    off, size = _text_section(entry)
    data = bytearray(entry.read_bytes())
    data[off:off + size] = b"\xff" * size
    entry.write_bytes(bytes(data))
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        x = gc.placeholder((4,), name="x")
        print(gc.compile([x], gc.exp(x) + 1, backend="c")(np.ones(4, np.float32))[0])
    """)
    run = subprocess.run([sys.executable, "-c", script], env=_env(damaged), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert abs(float(run.stdout) - (np.e + 1)) < 1e-5


@pytest.mark.skipif(not c_available() or not sys.platform.startswith("linux"),
                    reason="C compiler and ELF modules")
@pytest.mark.parametrize("cflags", ["-fsyntax-only", "-O2 -c", "-O2 -S"])
def test_flags_that_build_no_module_are_a_compile_error(tmp_path, monkeypatch, cflags):
    # GRAPHC_CFLAGS=-fsyntax-only gave FileNotFoundError on a temporary file, -c an object
    # file that dlopen refused, -S "corrupt cache entry": a CompileError naming the flags
    from graphc.runtime.cpu import CompileError
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CFLAGS", cflags)
    x = gc.placeholder((3,), name="x")
    with pytest.raises(CompileError, match="GRAPHC_CFLAGS") as info:
        gc.compile([x], gc.exp(x) * 2, backend="c")(np.ones(3, np.float32))
    assert cflags in str(info.value)
