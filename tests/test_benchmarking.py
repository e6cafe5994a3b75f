"""graphc.benchmarking's pure helpers (rounds, best-of, FMA peak parsing, tables, arguments);
no benchmark runs here except the FMA probe, which takes about a second."""
from __future__ import annotations

import platform
import shutil
import subprocess

import pytest

from graphc import benchmarking as bm
from graphc.commands import bench as bench_cmd


def test_best_of_ignores_missing_rounds():
    assert bm.best_of([0.3, 0.1, 0.2]) == 0.1
    assert bm.best_of([None, 0.4]) == 0.4
    assert bm.best_of([None]) is None
    assert bm.best_of([]) is None


def test_alternating_schedule():
    assert bm.alternating_schedule(["graphc", "torch"], 3) == ["graphc", "torch"] * 3
    assert bm.alternating_schedule(["graphc"], 0) == ["graphc"]  # at least one round


def test_measure_rounds_alternates_and_keeps_the_best():
    calls = []
    times = {"graphc": iter([0.5, 0.2, 0.4]), "torch": iter([0.3, 0.6, 0.1])}

    def fake(kind, peer, args, threads):
        calls.append((kind, peer, tuple(args), threads))
        if peer == "jax":
            return None  # not installed
        return next(times[peer])
    best = bm.measure_rounds("train", ["graphc", "torch", "jax"], [[1, 2], 8], 2, rounds=3,
                             measure_fn=fake)
    assert best == {"graphc": 0.2, "torch": 0.1, "jax": None}
    # graphc, torch, jax, graphc, torch, graphc, torch: a missing peer is not asked again
    assert [c[1] for c in calls] == ["graphc", "torch", "jax", "graphc", "torch",
                                     "graphc", "torch"]
    assert all(c[0] == "train" and c[2] == ([1, 2], 8) and c[3] == 2 for c in calls)


def test_measure_cases_runs_rounds_outermost():
    calls = []

    def fake(kind, peer, args, threads):
        calls.append((peer, args[0]))
        return 1.0 + len(calls)
    best = bm.measure_cases("dense", ["graphc", "numpy"], [[1], [2]], 2, rounds=2,
                            measure_fn=fake)
    assert calls == [("graphc", 1), ("numpy", 1), ("graphc", 2), ("numpy", 2)] * 2
    assert best == [{"graphc": 2.0, "numpy": 3.0}, {"graphc": 4.0, "numpy": 5.0}]


def test_train_flops_skip_the_input_gradient():
    # forward + weight gradient for both layers, input gradient for the second only
    assert bm.train_flops((4, 3, 2), 5) == 2 * 5 * (3 * (12 + 6) - 12)


def test_parse_peak_output():
    assert bm.parse_peak_output("117.3\n") == 117.3
    assert bm.parse_peak_output("#232.0\n") == 232.0
    for bad in ("", "0.0\n", "nan\n"):
        with pytest.raises(ValueError):
            bm.parse_peak_output(bad)


def test_peak_line_and_percent():
    line = bm.peak_line({1: 117.0, 2: 232.4})
    assert "117 GFLOP/s with 1 thread," in line and "232 GFLOP/s with 2 threads" in line
    assert bm.peak_line({}, "FMA peak not measured: no C compiler") \
        == "FMA peak not measured: no C compiler"
    assert bm.percent_of_peak(116.0, 232.0) == pytest.approx(50.0)
    assert bm.percent_of_peak(116.0, None) == "n/a"


def test_fma_peak_without_compiler():
    peaks, note = bm.fma_peak([1, 2], cc="no-such-compiler-graphc")
    assert peaks == {} and "no C compiler" in note


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_fma_peak_measures_something():
    peaks, note = bm.fma_peak([1], rounds=1, cc="gcc")
    assert note == "" and set(peaks) == {1} and peaks[1] > 0.5


@pytest.mark.skipif(shutil.which("gcc") is None or platform.machine() not in ("x86_64", "AMD64"),
                    reason="needs gcc on x86-64")
def test_fma_peak_probe_fmas_take_registers_only(tmp_path):
    """Every FMA of the probe's loop works on registers: a memory operand (the addend spilled
    to an unaligned stack slot) made Intel's split loads the bottleneck, halving the peak."""
    src = tmp_path / "fma_peak.c"
    src.write_text(bm.FMA_PEAK_C)
    asm = subprocess.run(["gcc", "-O3", "-march=native", "-fopenmp", "-S", str(src), "-o", "-"],
                         capture_output=True, text=True, check=True).stdout
    fmas = [ln for ln in asm.splitlines() if "vfmadd" in ln]
    assert len(fmas) >= 12
    assert not [ln for ln in fmas if "(" in ln], fmas


def test_train_table_has_percent_of_peak():
    sizes = (784, 256, 256, 10)
    results = [(sizes, 128, {"graphc": 1e-3, "numpy": 2e-3, "torch": None})]
    head, rows = bm.train_table(["graphc", "numpy", "torch"], results, peak=200.0)
    assert head[-2:] == ["graphc GFLOP/s", "% of peak"]
    gflops = bm.train_flops(sizes, 128) / 1e-3 / 1e9
    assert rows[0][-2] == pytest.approx(gflops)
    assert rows[0][-1] == pytest.approx(100 * gflops / 200.0)
    assert rows[0][4] == "n/a" and rows[0][5] == pytest.approx(2.0) and rows[0][6] == "n/a"
    assert rows[-1][0] == "geomean" and rows[-1][5] == pytest.approx(2.0)
    _, rows = bm.train_table(["graphc", "numpy"], results, peak=None)
    assert rows[0][-1] == "n/a"
    assert "n/a" in bm.markdown(head, rows)


def test_machine_line_says_best_of_rounds():
    line = bm.machine_line(2, 3, "measured fp32 FMA peak: 1 GFLOP/s")
    assert "best of 3 alternating rounds of medians" in line
    assert line.endswith("measured fp32 FMA peak: 1 GFLOP/s")
    assert "best of 1 alternating round of medians" in bm.machine_line(2, 1)


def test_versions_line_names_graphc_numpy_and_the_compiler():
    import numpy as np
    import graphc
    line = bm.versions_line()
    assert line.startswith(f"versions: graphc {graphc.__version__}, numpy {np.__version__}")
    assert "gcc" in line or "cc" in line


def test_main_rounds_and_header(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(bm, "fma_peak", lambda counts, **kw: ({1: 100.0, 2: 200.0}, ""))

    def fake_train(threads, nets, batches, rounds, peak):
        seen["train"] = (threads, rounds, peak)
        return ["net"], [["x"]]

    def fake_dense(threads, shapes, rounds):
        seen["dense"] = (threads, rounds)
        return ["n"], [["y"]]
    monkeypatch.setattr(bm, "bench_train", fake_train)
    monkeypatch.setattr(bm, "bench_dense", fake_dense)
    out = tmp_path / "b.md"
    assert bm.main(["--quick", "--out", str(out)]) == 0
    assert seen == {"train": (2, bm.QUICK_ROUNDS, 200.0), "dense": (2, bm.QUICK_ROUNDS)}
    text = out.read_text()
    assert "best of 1 alternating round of medians" in text and "200 GFLOP/s" in text
    assert bm.main(["--suite", "train", "--rounds", "4", "--threads", "1"]) == 0
    assert seen["train"] == (1, 4, 100.0)
    with pytest.raises(SystemExit):
        bm.main(["--rounds", "0"])


def test_cli_forwards_rounds(monkeypatch):
    import argparse
    got = {}
    monkeypatch.setattr(bm, "main", lambda argv: got.setdefault("argv", argv) and 0)
    p = argparse.ArgumentParser()
    bench_cmd.add_arguments(p)
    bench_cmd.run(p.parse_args(["--quick", "--rounds", "5"]))
    argv = got["argv"]
    assert argv[argv.index("--rounds") + 1] == "5" and "--quick" in argv
    got.clear()
    bench_cmd.run(p.parse_args([]))
    assert "--rounds" not in got["argv"]
