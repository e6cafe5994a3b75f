"""graphc: a symbolic computational-graph compiler for training neural networks.

The hand-written C/CUDA headers in the top-level ``kernels/`` folder ship inside the package
as ``graphc.kernels`` so that generated code can include them after ``pip install``.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "graphc" / "__init__.py").read_text()).group(1)

setup(
    name="graphc",
    version=VERSION,
    description="Symbolic graph compiler for neural-network training: autodiff + fused C/CUDA",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["graphc", "graphc.*"]) + ["graphc.kernels"],
    package_dir={"graphc.kernels": "kernels"},
    package_data={
        "graphc": ["datasets/mnist/*.gz", "datasets/README.md"],
        "graphc.kernels": ["*.h", "*.c"],
    },
    install_requires=[
        "numpy>=1.24",
        "cffi>=1.15",
        "sympy>=1.12",
        "networkx>=3.0",
        "filelock>=3.12",  # per-key lock of the compile cache (robust across processes and NFS)
        "tqdm>=4.60",      # training progress bars
    ],
    extras_require={
        "cuda": ["cupy-cuda12x", "nvidia-cuda-nvrtc-cu12"],
        "cuda-compile": ["nvidia-cuda-nvrtc-cu12"],  # compile GPU kernels to cubins without a GPU
        "opencl": ["pyopencl"],
        "plot": ["matplotlib"],
        "test": ["pytest>=7", "matplotlib", "pydot"],
    },
    entry_points={"console_scripts": ["graphc=graphc.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Programming Language :: C"],
)
