"""GPU benchmark (needs an NVIDIA GPU and CuPy): see graphc/benchmarking_gpu.py.

Usage: python benchmarks/bench_gpu.py [--suite all|dense|train] [--quick] [--out FILE]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from graphc.benchmarking_gpu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
