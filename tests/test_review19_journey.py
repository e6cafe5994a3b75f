"""Review 19: a new user's journey (README snippets, command-line help, docstrings, beginner
error messages)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphc as gc

PUBLIC = sorted(n for n in dir(gc) if not n.startswith("_")
                and not inspect.ismodule(getattr(gc, n)))


# -- docstrings of the public names ------------------------------------------------------------

@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_its_own_docstring(name):
    # elementwise ops had no docstring (gc.relu, gc.add, ...) or SymPy's ("Returns the
    # principal square root" with SymPy examples for gc.sqrt, "Represents the natural
    # logarithm of a number plus one" for gc.log1p)
    doc = inspect.getdoc(getattr(gc, name))
    assert doc and len(doc) >= 20, name
    for sympy_marker in (">>>", "sympy", "See Also", "References"):
        assert sympy_marker not in doc, (name, doc)


@pytest.mark.parametrize("name", ["add", "maximum", "where", "mul"])
def test_binary_op_docs_name_the_shape_error(name):
    assert "ShapeError" in getattr(gc, name).__doc__
    with pytest.raises(gc.ShapeError, match=name):
        args = [gc.placeholder((3,)), gc.placeholder((4,))]
        if name == "where":
            args = [gc.placeholder((3,), "bool")] + args
        getattr(gc, name)(*args)


def test_op_docs_state_parameters_and_defaults():
    assert "0.01" in gc.leaky_relu.__doc__
    assert "1.0" in gc.elu.__doc__
    assert '"tanh"' in gc.gelu.__doc__
    assert "cond" in gc.where.__doc__
    for fn in (gc.mse, gc.cross_entropy, gc.binary_cross_entropy,
               gc.binary_cross_entropy_with_logits):
        assert '"sum"' in fn.__doc__ and '"none"' in fn.__doc__, fn.__name__
    for word in ("BackendUnavailable", "ShapeError", "ValueError", "TypeError"):
        assert word in gc.compile.__doc__
    assert "ShapeError" in gc.grad.__doc__ and "TypeError" in gc.grad.__doc__


# -- beginner errors ----------------------------------------------------------------------------

def test_compile_given_an_optimizer_as_updates_says_how_to_fix_it():
    x = gc.placeholder((None, 3), name="x")
    W = gc.parameter(np.ones((3, 2), np.float32), name="W")
    with pytest.raises(TypeError, match=r"opt\.updates\(params, grads\)"):
        gc.compile([x], gc.sum(x @ W), updates=gc.optim.Adam(1e-3))  # was "not iterable"
    # any iterable of pairs is still fine
    f = gc.compile([x], gc.sum(x @ W), updates=zip([W], [W * 2.0]))
    f(np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(W.value, np.full((3, 2), 2.0, np.float32))


# -- command-line help ---------------------------------------------------------------------------

def _help(capsys, *argv):
    from graphc.cli import main
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's line wrapping undone


def _option_helps(text):
    """{option: its help text} from argparse's (unwrapped) help output."""
    import re
    parts = re.split(r" (--[a-z-]+)(?: [A-Z_]+| \{[^}]*\})? ", text.split("options:", 1)[1])
    return dict(zip(parts[1::2], parts[2::2]))


def test_train_help_states_each_default_once(capsys):
    text = _help(capsys, "train")
    # --init and --lr said "(default: he for relu-like, glorot otherwise) (default: None)"
    assert text.count("(default: None)") == 2  # --data-dir and --limit: really None
    assert "(default: he for relu-like, lecun for selu, glorot otherwise)" in text
    assert "(default: 256,256)" in text  # was "[256, 256]", not what --layers takes
    helps = _option_helps(text)
    for opt in ("--optimizer", "--epochs", "--batch-size", "--seed"):  # had no help at all
        assert "(default: " in helps[opt], (opt, helps[opt])
    assert "(default: 5)" in helps["--epochs"] and "(default: 128)" in helps["--batch-size"]
    from graphc.cli import build_parser
    assert build_parser().parse_args(["train"]).layers == [256, 256]


def test_bench_help_describes_every_option(capsys):
    helps = _option_helps(_help(capsys, "bench"))
    for opt in ("--backend", "--suite", "--threads", "--quick", "--rounds", "--out"):
        assert len(helps[opt].strip()) > 10, (opt, helps[opt])


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_bench_rejects_a_thread_count_below_one(value, capsys):
    # --threads 0 ran with OPENBLAS_NUM_THREADS=0 etc. and printed nonsense numbers
    from graphc.cli import main
    with pytest.raises(SystemExit) as info:
        main(["bench", "--threads", value])
    assert info.value.code == 2
    assert "argument --threads" in capsys.readouterr().err


def test_bench_passes_options_after_double_dash():
    from graphc.cli import build_parser
    args = build_parser().parse_args(["bench", "--backend", "cuda", "--", "--no-torch"])
    assert args.bench_args == ["--no-torch"]


@pytest.mark.parametrize("example", ["activations.py", "fashion_mnist_keras_demo.py",
                                     "mnist_mlp.py", "regularization.py", "xor.py",
                                     "zero_init.py"])
def test_example_help_describes_every_option(example):
    # --epochs, --seed and each example's own options (--lr, --patience, --hidden, ...) had
    # no help and so no default in --help; xor's --epochs counts gradient steps
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    r = subprocess.run([sys.executable, str(root / "examples" / example), "--help"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    helps = _option_helps(" ".join(r.stdout.split()))
    assert "--epochs" in helps and "--seed" in helps
    for opt, text in helps.items():
        if opt != "--help":
            assert "(default: " in text, (example, opt, text)
    if example == "xor.py":
        assert "steps" in helps["--epochs"] and "unused" in helps["--out"]


def test_fashion_demo_on_fallback_digits_does_not_claim_the_lecture_comparison(tmp_path):
    # without Fashion-MNIST files the demo trains on the embedded MNIST digits and printed
    # "test accuracy: 0.95  (lecture: 0.8792)", a comparison with another data set's number
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "GRAPHC_DATA"}
    env["PYTHONPATH"] = str(root)
    empty = tmp_path / "no-data"
    empty.mkdir()
    r = subprocess.run([sys.executable, str(root / "examples" / "fashion_mnist_keras_demo.py"),
                        "--quick", "--backend", "numpy", "--data-dir", str(empty), "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "embedded MNIST" in r.stdout
    line = next(s for s in r.stdout.splitlines() if s.startswith("test accuracy:"))
    assert "(lecture: 0.8792)" not in line and "not comparable" in line, line


# -- README promises ------------------------------------------------------------------------------

def test_function_profile_as_the_readme_documents(tmp_path):
    # README: "f.profile() on the C backend with GRAPHC_PROFILE=1 (seconds per generated
    # kernel)" - Function had no profile(): AttributeError (only f._exe.profile() existed)
    import os
    import subprocess
    import sys
    from pathlib import Path
    code = """
import numpy as np, graphc as gc
x = gc.placeholder((None, 32), name="x")
W = gc.parameter(np.full((32, 16), 0.01, "float32"), name="W")
f = gc.compile([x], gc.sum(gc.tanh(x @ W)), backend="c")
for _ in range(3):
    f(np.ones((64, 32), "float32"))
prof = f.profile()
assert prof and all(isinstance(k, str) and t >= 0 for k, t in prof), prof
print("total", sum(t for _, t in prof) > 0)
"""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), GRAPHC_PROFILE="1",
               GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    try:
        gc.compile([], gc.constant(1.0), backend="c")
    except gc.BackendUnavailable as e:
        pytest.skip(f"backend 'c' unavailable: {e}")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert "total True" in r.stdout
    f = gc.compile([], gc.constant(1.0), backend="numpy")
    with pytest.raises(NotImplementedError, match="backend='c'"):
        f.profile()


def test_readme_python_snippets_run_as_written(tmp_path):
    # a new user copies the README's tour: it must run unchanged and print a loss and C code
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
    assert blocks
    try:
        gc.compile([], gc.constant(1.0), backend="c")
    except gc.BackendUnavailable as e:
        pytest.skip(f"backend 'c' unavailable: {e}")
    env = dict(os.environ, PYTHONPATH=str(root))
    for i, code in enumerate(blocks):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, env=env, cwd=tmp_path)
        assert r.returncode == 0, f"README python block {i} failed:\n{r.stderr}"
        if "step.source" in code:
            first, rest = r.stdout.split("\n", 1)
            assert 0.0 < float(first) < 10.0, r.stdout  # the loss of one Adam step
            assert "Generated by graphc" in rest


# -- more beginner errors -------------------------------------------------------------------------

def test_optimizer_class_instead_of_instance_says_so():
    m = gc.nn.Sequential([gc.nn.Dense(3)], input_dim=2)
    X, y = np.ones((4, 2), np.float32), np.zeros(4, np.int64)
    # was "unknown optimizer <class 'graphc.optim.Adam'>; expected an Optimizer or one of ..."
    with pytest.raises(ValueError, match=r"Adam is a class: pass an instance, e\.g\. Adam\("):
        m.fit(X, y, optimizer=gc.optim.Adam, epochs=1, backend="numpy", progress=False)
    with pytest.raises(ValueError, match="'sgd'"):
        gc.optim.get(gc.optim.SGD)


def test_compile_with_a_same_named_other_placeholder_explains_the_mixup():
    built = gc.placeholder((None, 3), name="a")
    other = gc.placeholder((None, 3), name="a")
    # was "the outputs need placeholder(s) ['a'] that are not in inputs ['a']"
    with pytest.raises(ValueError, match="other placeholders of the same name"):
        gc.compile([other], built * 2.0)


def test_public_methods_of_models_have_docstrings():
    for name, fn in vars(gc.nn.Sequential).items():
        if not name.startswith("_") and callable(fn):
            assert inspect.getdoc(fn), name  # count_params had none
    m = gc.nn.Sequential([gc.nn.Dense(4), gc.nn.BatchNorm(), gc.nn.Dense(2)], input_dim=3)
    assert m.count_params() == 3 * 4 + 4 + 2 * 4 + 4 * 2 + 2


def test_model_fit_help_documents_arguments_and_errors():
    # help(model.fit) said only "Train the model; see graphc.nn.training.fit ..."
    m = gc.nn.Sequential([gc.nn.Dense(3)], input_dim=2)
    doc = inspect.getdoc(m.fit)
    for word in ("validation_split", "early_stopping", "weight_decay", "Returns", "Raises",
                 "different lengths"):
        assert word in doc, word
    with pytest.raises(ValueError, match="different lengths"):
        m.fit(np.ones((4, 2), np.float32), np.zeros(3, np.int64), backend="numpy",
              progress=False)


def test_cache_help_mentions_every_action(capsys):
    # "List or clear the compile cache" / "delete them all": dir, and that clear also removes
    # the GEMM driver objects, were not said
    text = _help(capsys, "cache")
    assert "print its directory" in text and "dir: print" in text
    assert "GEMM driver" in text
