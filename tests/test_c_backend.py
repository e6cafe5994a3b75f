"""C backend specifics: the compile cache, concurrency, safety of generated code, fusion,
parameter updates.  (Per-op differential tests against numpy live with the op tests.)"""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as gc
from graphc.errors import BackendUnavailable
from graphc.runtime import cache
from backends import C, CUDA, OPENCL

from backends import call_from_threads, reductions_hosting_updates

try:
    gc.compile([], gc.constant(1.0) * 2, backend="c")
    HAVE_C = True
except BackendUnavailable:
    HAVE_C = False

pytestmark = pytest.mark.skipif(not HAVE_C, reason="no C compiler")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def mlp_step(seed=0, hidden=17, optimizer="sgd", names=("x", "y")):
    rng = np.random.RandomState(seed)
    x = gc.placeholder((None, 13), name=names[0])
    y = gc.placeholder((None,), "int64", name=names[1])
    W1 = gc.parameter(rng.randn(13, hidden).astype("float32") * 0.3, name="W1")
    b1 = gc.parameter(rng.randn(hidden).astype("float32") * 0.1, name="b1")
    W2 = gc.parameter(rng.randn(hidden, 5).astype("float32") * 0.3, name="W2")
    b2 = gc.parameter(np.zeros(5, "float32"), name="b2")
    params = [W1, b1, W2, b2]
    loss = gc.cross_entropy(gc.tanh(x @ W1 + b1) @ W2 + b2, y) + 1e-3 * gc.l2_penalty([W1, W2])
    grads = gc.grad(loss, params)
    if optimizer == "sgd":
        updates = [(p, p - 0.1 * g) for p, g in zip(params, grads)]
    else:  # momentum with explicit state
        vel = [gc.parameter(np.zeros(p.shape, "float32"), trainable=False) for p in params]
        updates = []
        for p, g, v in zip(params, grads, vel):
            nv = 0.9 * v + g
            updates += [(v, nv), (p, p - 0.05 * nv)]
    return x, y, params, loss, updates


def run_steps(backend, steps=4, batches=(9, 9, 3, 9), **kw):
    x, y, params, loss, updates = mlp_step(**kw)
    f = gc.compile([x, y], loss, updates=updates, backend=backend)
    rng = np.random.RandomState(1)
    losses = []
    for batch in list(batches)[:steps]:
        losses.append(float(f(rng.randn(batch, 13), rng.randint(0, 5, batch))))
    return losses, [p.value for p in params]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_training_steps_match_numpy(cache_dir, optimizer):
    ref_losses, ref_params = run_steps("numpy", optimizer=optimizer)
    c_losses, c_params = run_steps("c", optimizer=optimizer)
    np.testing.assert_allclose(c_losses, ref_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(c_params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_training_steps_match_numpy_over_several_gemm_k_blocks(cache_dir, optimizer):
    # batches above the GEMM's K block (384): the weight gradient's GEMM sums over several
    # K blocks while its epilogue updates the weights in place (it must read the old weights)
    ref_losses, ref_params = run_steps("numpy", batches=(500, 1000, 385), optimizer=optimizer)
    c_losses, c_params = run_steps("c", batches=(500, 1000, 385), optimizer=optimizer)
    np.testing.assert_allclose(c_losses, ref_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(c_params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fused_and_unfused_agree(cache_dir):
    from graphc.fusion import fuse_dense, fuse_elementwise
    from graphc.lower import lower
    x, y, params, loss, updates = mlp_step()
    f = gc.compile([x, y], loss, updates=updates, backend="numpy")
    fused = lower(f.program, [(9, 13), (9,)])
    unfused = lower(f.program, [(9, 13), (9,)], pipeline=[])
    assert any(k.kind == "dense" and k.node.attrs["expr"] != gc.symbolic.A[0]
               for k in fused.kernels), "the bias/activation epilogue was not fused"
    assert len(fused.kernels) < len(unfused.kernels)
    assert all(k.kind != "dense" for k in unfused.kernels)
    # both lowered programs run and agree
    from graphc.runtime.cpu import _Specialization
    rng = np.random.RandomState(3)
    X, Y = rng.randn(9, 13).astype("float32"), rng.randint(0, 5, 9)
    results = []
    for pipeline in (None, []):
        start = [p.value for p in params]
        out = _Specialization(f.program, [(9, 13), (9,)], pipeline=pipeline).run([X, Y])
        results.append((out, [p.value for p in params]))
        for p, v in zip(params, start):
            p.value = v
    (o1, p1), (o2, p2) = results
    np.testing.assert_allclose(o1[0], o2[0], rtol=1e-5)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_source_is_deterministic_and_commented(cache_dir):
    sources = []
    for _ in range(2):
        x, y, params, loss, updates = mlp_step()
        f = gc.compile([x, y], loss, updates=updates, backend="c")
        f(np.zeros((4, 13), "float32"), np.zeros(4, "int64"))
        sources.append(f.source)
    strip = [s.replace("test_c_backend.py", "") for s in sources]
    # node ids differ between the two builds; the code itself must not
    import re
    norm = [re.sub(r"node \S+ =", "node =", re.sub(r"slots\[\d+\]: \w+ \S+", "", s))
            for s in strip]
    assert norm[0] == norm[1]
    assert "built at" in sources[0] and "test_c_backend.py" in sources[0]


HOSTILE = 'evil*/ #include <stdio.h>\n system("rm -rf /"); /* \u2028 "\\'


def test_hostile_names_do_not_reach_code(cache_dir):
    x = gc.placeholder((None, 3), name=HOSTILE)
    W = gc.parameter(np.ones((3, 2), "float32"), name=HOSTILE + "W")
    out = gc.relu(x @ W)
    out.name = HOSTILE
    f = gc.compile([x], out, backend="c")
    res = f(np.ones((2, 3), "float32"))
    np.testing.assert_allclose(res, np.full((2, 2), 3.0))
    import re
    code = re.sub(r"/\*.*?\*/", "", f.source, flags=re.S)  # everything outside comments
    assert "system" not in code and "stdio" not in code and "evil" not in code
    assert "\\" not in f.source


def test_cache_hit_and_corrupt_entry(cache_dir):
    x = gc.placeholder((None, 4), name="x")
    out = gc.sigmoid(x) * 3
    f = gc.compile([x], out, backend="c")
    f(np.zeros((2, 4), "float32"))
    entries = cache.list_entries()
    assert len(entries) == 1
    so = entries[0]["path"]
    # a second compile of the same graph loads the cached module
    g = gc.compile([x], gc.sigmoid(x) * 3, backend="c")
    g(np.zeros((2, 4), "float32"))
    assert len(cache.list_entries()) == 1
    # corrupt the entry: the next load recompiles instead of crashing.  (Replace the file, as
    # a crashed writer would leave it: overwriting a loaded library in place would SIGBUS.)
    tmp = so + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(b"garbage")
    os.replace(tmp, so)
    from graphc.runtime import cpu
    lib, path = cpu.build_module(g._exe._last.source)
    assert open(path, "rb").read(4) == b"\x7fELF"
    assert cache.clear() == 1
    assert cache.list_entries() == []


def test_concurrent_processes_share_one_build(cache_dir):
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        x = gc.placeholder((None, 6), name="x")
        f = gc.compile([x], gc.tanh(x @ gc.constant(np.eye(6, dtype="float32"))) + 1, backend="c")
        print(float(f(np.ones((3, 6), "float32")).sum()))
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    vals = {round(float(o[0]), 4) for o in outs}
    assert vals == {round(18 * (np.tanh(1) + 1), 4)}
    assert len(cache.list_entries()) == 1


def test_stale_lock_is_recovered(cache_dir):
    # a lock file left by a crashed process (flock released) must not block
    from graphc.runtime.cache import kernel_cache_dir
    x = gc.placeholder((None, 2), name="x")
    f = gc.compile([x], x * 5, backend="c")
    src_key_dir = kernel_cache_dir()
    for name in ("deadbeef.lock",):
        (src_key_dir / name).write_text("")
    f(np.ones((1, 2), "float32"))


def test_missing_compiler_is_backend_unavailable(monkeypatch):
    monkeypatch.setenv("CC", "definitely-not-a-compiler")
    x = gc.placeholder((None, 2), name="x")
    with pytest.raises(BackendUnavailable, match="compiler"):
        gc.compile([x], x * 2, backend="c")


def test_compile_error_keeps_source(cache_dir, monkeypatch):
    from graphc.runtime import cpu
    with pytest.raises(cpu.CompileError) as info:
        cpu.build_module("int gc_step(void **s, char *a) { this is not C; }")
    assert ".c" in str(info.value) and "error" in str(info.value)


def test_bad_feed_leaves_parameters_untouched(cache_dir):
    x, y, params, loss, updates = mlp_step()
    f = gc.compile([x, y], loss, updates=updates, backend="c")
    before = [p.value for p in params]
    with pytest.raises(ValueError, match="x"):
        f(np.zeros((4, 12), "float32"), np.zeros(4, "int64"))
    with pytest.raises(ValueError, match="labels"):
        f(np.zeros((4, 13), "float32"), np.full(4, 7, "int64"))
    for a, b in zip(before, [p.value for p in params]):
        np.testing.assert_array_equal(a, b)


def test_memory_report_reuses_buffers(cache_dir):
    x, y, params, loss, updates = mlp_step()
    f = gc.compile([x, y], loss, updates=updates, backend="c")
    f(np.zeros((64, 13), "float32"), np.zeros(64, "int64"))
    rep = f.memory_report()
    assert rep["peak"] > 0 and rep["buffers"]
    # liveness-based reuse: less than every buffer in a block of its own (64-byte aligned;
    # with the l2 terms computed by their sums, padding alone exceeds the raw byte total)
    from graphc.lower import ALIGN as align
    assert rep["arena"] < sum(-(-b // align) * align for b in rep["buffers"].values())
    assert set(rep["in_place_updates"]) >= {"W1", "W2"}


def test_new_shapes_specialize(cache_dir):
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], gc.sum(x * x, axis=1), backend="c")
    for n in (1, 5, 2):
        X = np.arange(3 * n, dtype="float32").reshape(n, 3)
        np.testing.assert_allclose(f(X), (X * X).sum(1))


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_update_values_broadcast_and_cast_to_the_parameter(cache_dir, backend):
    x = gc.placeholder((3,), name="x")
    p = gc.parameter(np.zeros((4, 3), "float32"))
    q = gc.parameter(np.zeros(2, "float32"))
    f = gc.compile([x], gc.sum(x), updates=[(p, x * 2.0), (q, gc.sum(x))], backend=backend)
    f(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(p.value, np.tile([2.0, 4.0, 6.0], (4, 1)))
    np.testing.assert_array_equal(q.value, [6.0, 6.0])
    r = gc.parameter(np.zeros(3, "float32"))
    g = gc.compile([], [], updates=[(r, gc.constant(np.arange(3.0), dtype="float64"))],
                   backend=backend)
    g()
    assert r.value.dtype == np.float32 and r.value.tolist() == [0.0, 1.0, 2.0]


def test_interpreter_exits_cleanly_after_parallel_kernels(cache_dir):
    """OpenMP workers still spinning at exit must not outlive the code they run (regression:
    the module, and libgomp with it, were unmapped at exit -> SIGSEGV)."""
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        x = gc.placeholder((None, 784), name="x")
        W = gc.parameter(np.random.rand(784, 256).astype("float32"))
        f = gc.compile([x], gc.relu(x @ W), backend="c")
        for _ in range(20):
            f(np.random.rand(128, 784).astype("float32"))
        print("ok")
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), OMP_WAIT_POLICY="active",
               OMP_NUM_THREADS="2",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]


def test_calls_from_several_threads_are_safe(cache_dir):
    import threading
    x = gc.placeholder((None, 64), name="x")
    W = gc.parameter(np.random.RandomState(0).rand(64, 32).astype("float32"))
    f = gc.compile([x], gc.tanh(x @ W), backend="c")
    X = [np.random.RandomState(i).rand(16, 64).astype("float32") for i in range(4)]
    want = [np.tanh(a @ W.value) for a in X]
    errors = []

    def work(i):
        for _ in range(50):
            if not np.allclose(f(X[i]), want[i], atol=1e-5):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _optimizer(name):
    return {"sgd": gc.optim.SGD(0.1), "momentum": gc.optim.SGD(0.1, momentum=0.9),
            "nesterov": gc.optim.SGD(0.1, momentum=0.9, nesterov=True),
            "adam": gc.optim.Adam(0.01), "rmsprop": gc.optim.RMSProp(0.01)}[name]


@pytest.mark.parametrize("into_gemm", [False, True])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "rmsprop"])
def test_optimizer_updates_fold_into_one_kernel(cache_dir, monkeypatch, name, into_gemm):
    # each weight's updates (Adam: m, v and the weight) run in one kernel: an elementwise loop
    # (default) or, with FOLD_INTO_GEMM, the epilogue of the GEMM computing the gradient
    # (batch 500 also sums that GEMM over two K blocks)
    import graphc.lower
    monkeypatch.setattr(graphc.lower, "FOLD_INTO_GEMM", into_gemm)
    rng = np.random.RandomState(3)
    x = gc.placeholder((None, 20), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.randn(20, 30).astype("float32") * 0.3, name="W1")
    b1 = gc.parameter(np.zeros(30, "float32"), name="b1")
    W2 = gc.parameter(rng.randn(30, 7).astype("float32") * 0.3, name="W2")
    params = [W1, b1, W2]
    loss = gc.cross_entropy(gc.tanh(x @ W1 + b1) @ W2, y)
    updates = _optimizer(name).updates(params, gc.grad(loss, params))
    state = [p for p, _ in updates]
    init = [p.value.copy() for p in state]
    X, Y = rng.randn(500, 20).astype("float32"), rng.randint(0, 7, 500)
    results = {}
    for backend in ("numpy", "c"):
        for p, v in zip(state, init):
            p.value = v.copy()
        f = gc.compile([x, y], loss, updates=updates, backend=backend)
        losses = [float(f(X, Y)) for _ in range(3)]
        results[backend] = losses, [p.value.copy() for p in state]
    np.testing.assert_allclose(results["c"][0], results["numpy"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results["c"][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    kernels = f._exe._current().lowered.kernels
    # (not the loss's gradient; nor Adam's step counters, which join one scalar kernel:
    # lower.FOLD_SCALARS)
    members = sum(m.in_place for k in kernels for m in k.members if m.node.shape != ())
    scalar_members = sum(m.in_place for k in kernels for m in k.members if m.node.shape == ())
    gemm_hosts = sum(bool(k.members) for k in kernels if k.kind == "dense")
    reduce_hosts = sum(bool(k.members) for k in kernels if k.kind == "reduce")
    # (members, GEMM hosts, reduction hosts): per parameter every update but the first joins
    # one kernel, b1's all join the column sum of its gradient; without GEMM folding, an
    # update reading a GEMM-computed velocity cannot (momentum's W)
    expected = {("sgd", False): (1, 0, 1), ("sgd", True): (1, 0, 1),
                ("momentum", False): (2, 0, 1), ("momentum", True): (4, 2, 1),
                ("nesterov", False): (4, 0, 1), ("nesterov", True): (6, 2, 1),
                ("adam", False): (7, 0, 1), ("adam", True): (9, 2, 1),
                ("rmsprop", False): (4, 0, 1), ("rmsprop", True): (6, 2, 1)}[name, into_gemm]
    assert (members, gemm_hosts, reduce_hosts) == expected
    assert scalar_members == (2 if name == "adam" else 0)  # 3 counters: 1 host, 2 members
    assert f.source.count("and updates in place") == members + scalar_members


def test_update_is_not_folded_into_a_gemm_reading_the_parameter(cache_dir, monkeypatch):
    # G = W @ Z feeds two updates; W's own update must not run inside the GEMM that still
    # reads W (element order would matter), V's may
    import graphc.lower
    monkeypatch.setattr(graphc.lower, "FOLD_INTO_GEMM", True)
    rng = np.random.RandomState(4)
    W = gc.parameter(rng.randn(6, 6).astype("float32"), name="W")
    Z = gc.parameter(rng.randn(6, 6).astype("float32"), name="Z")
    V = gc.parameter(rng.randn(6, 6).astype("float32"), name="V")
    G = W @ Z
    updates = [(W, W - 0.1 * G), (V, V + G)]
    init = [p.value.copy() for p in (W, Z, V)]
    results = {}
    for backend in ("numpy", "c"):
        for p, v in zip((W, Z, V), init):
            p.value = v.copy()
        f = gc.compile([], gc.sum(G), updates=updates, backend=backend)
        f()
        f()
        results[backend] = [W.value.copy(), V.value.copy()]
    for a, b in zip(results["c"], results["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def plain_sgd_step(backend, lr_input: bool, seed=3):
    """Plain SGD without weight decay: each weight's update is W + alpha * (h^T g), which the C
    backend adds from the GEMM's registers (gc_gemm.h's NAME_axpy) instead of an epilogue."""
    rng = np.random.RandomState(seed)
    x = gc.placeholder((None, 40), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    lr = gc.placeholder((), name="lr") if lr_input else 0.05
    W1 = gc.parameter(rng.randn(40, 70).astype("float32") * 0.2, name="W1")
    b1 = gc.parameter(np.zeros(70, "float32"), name="b1")
    W2 = gc.parameter(rng.randn(70, 6).astype("float32") * 0.2, name="W2")
    params = [W1, b1, W2]
    loss = gc.cross_entropy(gc.relu(x @ W1 + b1) @ W2, y)
    grads = gc.grad(loss, params)
    inputs = [x, y] + ([lr] if lr_input else [])
    f = gc.compile(inputs, loss, backend=backend,
                   updates=[(p, p - lr * g) for p, g in zip(params, grads)])
    data = np.random.RandomState(9)
    losses = []
    for batch in (9, 500, 1000, 385, 33):  # K = batch: one and several GEMM K blocks
        feed = [data.randn(batch, 40).astype("float32"), data.randint(0, 6, batch)]
        losses.append(float(f(*feed, *([np.float32(0.05)] if lr_input else []))))
    return f, losses, [p.value for p in params]


@pytest.mark.parametrize("lr_input", [False, True], ids=["lr-constant", "lr-placeholder"])
def test_plain_sgd_adds_the_product_from_the_registers(cache_dir, lr_input):
    _, ref_losses, ref_params = plain_sgd_step("numpy", lr_input)
    f, losses, params = plain_sgd_step("c", lr_input)
    assert f.source.count("_axpy(") == 2  # W1 and W2 (b1's column sum is elementwise)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_sgd_with_weight_decay_keeps_the_epilogue(cache_dir):
    # p - lr * (g + wd * p) = (1 - lr * wd) * p - lr * g: C's old value is scaled, not an axpy
    rng = np.random.RandomState(2)
    W = gc.parameter(rng.randn(20, 30).astype("float32"), name="W")
    x = gc.placeholder((None, 20), name="x")
    loss = gc.sum(x @ W)
    (g,) = gc.grad(loss, [W])
    init = rng.randn(20, 30).astype("float32")
    results = {}
    for backend in ("numpy", "c"):
        W.value = init.copy()
        f = gc.compile([x], loss, updates=[(W, W - 0.1 * (g + 0.01 * W))], backend=backend)
        f(np.ones((7, 20), "float32"))
        results[backend] = W.value.copy()
        if backend == "c":
            assert "_axpy(" not in f.source
    np.testing.assert_allclose(results["c"], results["numpy"], rtol=1e-5, atol=1e-5)


def test_few_row_gemms_through_the_transposed_output_path(cache_dir):
    """Small batches with wide layers take gc_gemm.h's transposed-output path (C^T = op(B)^T
    op(A)^T): the forward h @ W with W's rows more than 2 KiB apart, and dh = g W^T.  Epilogues
    (bias + relu forward, relu' backward) then see transposed tiles; batches above 128 take the
    regular path in the same compiled step."""
    rng = np.random.RandomState(5)
    x = gc.placeholder((None, 30), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W0 = gc.parameter(rng.randn(30, 600).astype("float32") * 0.1, name="W0")
    W1 = gc.parameter(rng.randn(600, 700).astype("float32") * 0.05, name="W1")
    b1 = gc.parameter(rng.randn(700).astype("float32") * 0.1, name="b1")
    W2 = gc.parameter(rng.randn(700, 9).astype("float32") * 0.05, name="W2")
    params = [W0, W1, b1, W2]
    logits = gc.relu(gc.relu(x @ W0) @ W1 + b1) @ W2
    loss = gc.cross_entropy(logits, y)
    grads = gc.grad(loss, params)
    init = [p.value.copy() for p in params]
    data = np.random.RandomState(11)
    feeds = [(data.randn(b, 30).astype("float32"), data.randint(0, 9, b)) for b in (1, 5, 40, 64, 100, 200)]
    results = {}
    for backend in ("numpy", "c"):
        for p, v in zip(params, init):
            p.value = v.copy()
        opt = gc.optim.SGD(0.05, momentum=0.9)
        f = gc.compile([x, y], loss, updates=opt.updates(params, grads), backend=backend)
        losses = [float(f(*feed)) for feed in feeds]
        results[backend] = losses, [p.value.copy() for p in params]
    np.testing.assert_allclose(results["c"][0], results["numpy"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results["c"][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_graphs_differing_only_in_a_fill_value_do_not_share_a_module(cache_dir):
    # the warm-load index must key every attribute that reaches the C (fill_like's value is a
    # literal there); one that left it out gave ones_like the zeros of an earlier graph
    X = np.ones((2, 3), "float32")
    for fill, want in ((gc.zeros_like, 0.0), (gc.ones_like, 1.0), (lambda t: 3 * t + gc.ones_like(t), 4.0)):
        x = gc.placeholder((None, 3), name="x")
        np.testing.assert_array_equal(gc.compile([x], fill(x), backend="c")(X), np.full((2, 3), want))


def test_constants_differing_beyond_15_digits_do_not_share_a_module(cache_dir):
    # str() of a SymPy Float keeps 15 digits; the index uses exact text
    x = gc.placeholder((None, 2), name="x", dtype="float64")
    a, b = 1.0 + 2.0 ** -50, 1.0 + 2.0 ** -49
    fa = gc.compile([x], x * a - x, backend="c")
    fb = gc.compile([x], x * b - x, backend="c")
    X = np.ones((1, 2))
    assert fa(X)[0, 0] == pytest.approx(2.0 ** -50, rel=1e-6)
    assert fb(X)[0, 0] == pytest.approx(2.0 ** -49, rel=1e-6)


RUN_SMALL_STEP = textwrap.dedent("""
    import numpy as np, graphc as gc
    x = gc.placeholder((None, 3), name="x")
    W = gc.parameter(np.ones((3, 2), np.float32), name="W")
    print(float(gc.compile([x], gc.tanh(x @ W), backend="c")(np.ones((2, 3), np.float32)).sum()))
""")


def _run_small_step(cache_dir):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__))))
    return subprocess.run([sys.executable, "-c", RUN_SMALL_STEP], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_damaged_cached_module_is_rebuilt_not_loaded(cache_dir, damage):
    # a truncated .so maps fine and then kills dlopen with SIGBUS; a foreign shared object
    # loads but lacks graphc's functions: both must be detected before dlopen and rebuilt
    first = _run_small_step(cache_dir)
    assert first.returncode == 0, first.stderr
    for entry in cache.list_entries():
        so = entry["path"]
        if damage == "truncated":
            with open(so, "r+b") as fh:
                fh.truncate(entry["bytes"] // 3)
        else:
            import shutil
            shutil.copyfile(subprocess.run(["gcc", "-print-file-name=libm.so.6"], capture_output=True,
                                           text=True).stdout.strip() or "/lib/x86_64-linux-gnu/libm.so.6", so)
    again = _run_small_step(cache_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout


def test_threads_compiling_on_a_cold_cache(cache_dir):
    # threads of one process share the pid: temporary index / module names must differ per thread
    x = gc.placeholder((None, 3), name="x")
    P = gc.parameter(np.ones(3, np.float32), name="P")
    h = gc.compile([x], gc.sum(x * P), updates=[(P, P + 1)], backend="c")
    errors = call_from_threads(lambda: h(np.ones((4, 3), np.float32)), threads=6, calls=30)
    assert not errors, errors
    np.testing.assert_array_equal(P.value, np.full(3, 181.0))


def test_source_of_a_warm_load_names_this_graphs_nodes(cache_dir):
    def build(name):
        x = gc.placeholder((None, 3), name=name)
        W = gc.parameter(np.ones((3, 2), np.float32), name=name + "_W")
        f = gc.compile([x], gc.relu(x @ W), backend="c")
        f(np.ones((2, 3), np.float32))
        return f
    build("alpha")
    beta = build("beta")  # same structure: loaded through the index, not rendered
    assert "beta" in beta.source and "alpha" not in beta.source


def test_zero_size_parameter(cache_dir):
    x = gc.placeholder((None, 3), name="x")
    E = gc.parameter(np.zeros((0,), np.float32), name="E")
    f = gc.compile([x], x * 2 + gc.sum(E), backend="c")
    np.testing.assert_array_equal(f(np.ones((2, 3), np.float32)), np.full((2, 3), 2.0))


def test_unusable_cache_dir_falls_back_with_a_warning(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(not_a_dir))
    monkeypatch.setattr(cache, "_fallback_dir", None)
    x = gc.placeholder((None, 2), name="x")
    with pytest.warns(RuntimeWarning, match="cannot use the compile cache"):
        f = gc.compile([x], x * 7 + 1, backend="c")
        out = f(np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(out, [[8.0, 8.0]])


@pytest.mark.parametrize("backend", [C, OPENCL, CUDA])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_labels_computed_in_the_graph_are_checked_before_any_update(cache_dir, optimizer,
                                                                     backend):
    # computed labels are checked by the cross-entropy kernel, which lowering schedules before
    # every in-place update: C ends the step with a status, the GPU backends read a status word
    # before launching the updates
    rng = np.random.RandomState(0)
    x = gc.placeholder((None, 3), name="x")
    y = gc.placeholder((None,), dtype="int64", name="y")
    W1 = gc.parameter(rng.randn(3, 8).astype("float32"), name="W1")
    W2 = gc.parameter(rng.randn(8, 4).astype("float32"), name="W2")
    loss = gc.cross_entropy(gc.relu(x @ W1) @ W2, y + 1)
    grads = gc.grad(loss, [W1, W2])
    opt = gc.optim.SGD(0.1, momentum=0.9) if optimizer == "sgd" else gc.optim.Adam(0.01)
    updates = opt.updates([W1, W2], grads)
    state = [p for p, _ in updates]
    f = gc.compile([x, y], loss, updates=updates, backend=backend)
    X = rng.randn(5, 3).astype("float32")
    before = [p.value for p in state]
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 4\)"):
        f(X, np.array([0, 1, 2, 3, 0]))  # 3 + 1 is out of range
    for p, v in zip(state, before):
        np.testing.assert_array_equal(p.value, v, err_msg=p.name)
    # in range: trains like the numpy backend
    ok = np.array([0, 1, 2, 0, 1])
    got = [float(f(X, ok)) for _ in range(3)]
    after_c = [p.value for p in state]
    for p, v in zip(state, before):
        p.value = v
    g = gc.compile([x, y], loss, updates=updates, backend="numpy")
    want = [float(g(X, ok)) for _ in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(after_c, [p.value for p in state]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_updates_fold_into_the_reduction_of_their_gradient(cache_dir):
    # a bias's update (and optimizer state) runs in the final loop of its gradient's column
    # sum; other reductions (mean, max, logsumexp) host updates too; a reduction reading the
    # parameter it would update (at other indices) hosts nothing
    rng, X, g, updates = reductions_hosting_updates(None)
    state = [u for u, _ in updates]
    init = [u.value.copy() for u in state]
    data = rng.randn(5, 3).astype("float32")
    results = {}
    for backend in ("numpy", "c"):
        for u, v in zip(state, init):
            u.value = v.copy()
        f = gc.compile([X], g, updates=updates, backend=backend)
        outs = [f(data) for _ in range(2)]
        results[backend] = outs, [u.value.copy() for u in state]
    for a, b in zip(results["c"][0], results["numpy"][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    for a, b, u in zip(results["c"][1], results["numpy"][1], state):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=u.name)
    kernels = f._exe._current().lowered.kernels
    hosts = {k.node.op: len(k.members) for k in kernels if k.kind == "reduce" and k.members}
    assert hosts == {"sum": 2, "mean": 1, "logsumexp": 1, "max": 1}  # not s's: it reads s
    assert f.source.count("and updates in place") == 5


@pytest.mark.parametrize("backend", [C, OPENCL])
@pytest.mark.parametrize("act", ["gelu", "silu", "mish", "softsign", "prelu"])
def test_activation_of_a_training_step_runs_in_the_gemm_epilogue(cache_dir, backend, act):
    # the backward pass reads the pre-activation z too (no output-form derivative), so the
    # fusion passes keep z; lowering computes act(z) in the epilogue of the GEMM computing z,
    # written next to it, instead of a separate pass over z
    rng = np.random.RandomState(0)
    x = gc.placeholder((None, 20), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.randn(20, 30).astype("float32") * 0.3, name="W1")
    b1 = gc.parameter(np.zeros(30, "float32"), name="b1")
    alpha = gc.parameter(np.full(30, 0.25, "float32"), name="alpha")
    W2 = gc.parameter(rng.randn(30, 7).astype("float32") * 0.3, name="W2")
    z = x @ W1 + b1
    h = gc.prelu(z, alpha) if act == "prelu" else getattr(gc, act)(z)
    loss = gc.cross_entropy(h @ W2, y)
    params = [W1, b1, alpha, W2]
    updates = gc.optim.Adam(0.01).updates(params, gc.grad(loss, params))
    state = [p for p, _ in updates]
    init = [p.value.copy() for p in state]
    X, Y = rng.randn(50, 20).astype("float32"), rng.randint(0, 7, 50)
    results = {}
    for name in ("numpy", backend):
        for p, v in zip(state, init):
            p.value = v.copy()
        f = gc.compile([x, y], loss, updates=updates, backend=name)
        results[name] = [float(f(X, Y)) for _ in range(3)], [p.value.copy() for p in state]
    np.testing.assert_allclose(results[backend][0], results["numpy"][0], rtol=1e-5)
    for a, b, p in zip(results[backend][1], results["numpy"][1], state):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=p.name)
    first = f._exe._current().lowered.kernels[0]
    assert first.kind == "dense" and [m.in_place for m in first.members] == [False]
    assert first.name == f"k0_dense_add_{act}"


def test_vectorized_loops_call_glibc_vector_math(cache_dir):
    # where glibc's libmvec is (x86-64 Linux), elementwise loops call its 16-lane functions
    # instead of expf once per element; the values stay within a few ulp of numpy's
    from graphc.runtime import cpu
    if not cpu._libmvec_flags():
        pytest.skip("no libmvec on this machine")
    import shutil
    x = gc.placeholder((None,), name="x")

    def outs():
        return [gc.exp(x), gc.tanh(x), gc.sigmoid(x), gc.softplus(x), gc.elu(x), gc.log(x * x)]
    data = np.linspace(-30, 30, 10001).astype("float32")
    f = gc.compile([x], outs(), backend="c")
    for g, w in zip(f(data), gc.compile([x], outs(), backend="numpy")(data)):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-30)
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not found")
    symbols = subprocess.run([nm, "-D", str(f._exe._current().path)], capture_output=True,
                             text=True).stdout
    assert "_ZGV" in symbols and "expf" in symbols, symbols[:2000]


def test_long_float_sums_accumulate_in_double(cache_dir):
    # a float accumulator over 10**6 terms was off by 4e-4 relative (numpy: pairwise, ~1e-7)
    x = gc.placeholder((None,), name="x")
    data = np.random.RandomState(0).rand(1_000_000).astype("float32")
    mean_sq, total = gc.compile([x], [gc.mean(x * x), gc.sum(x)], backend="c")(data)
    exact = data.astype(np.float64)
    np.testing.assert_allclose(mean_sq, (exact ** 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(total, exact.sum(), rtol=1e-6)


@pytest.mark.parametrize("shape,axis", [((37, 600), 0), ((3, 20, 257), 1), ((4, 3, 2, 5), 0)])
def test_softmax_over_a_non_last_axis(cache_dir, shape, axis):
    # blocks of up to 256 neighbouring outputs walk the axis together (600 = 2 full blocks and
    # a partial one); non-finite columns as in the contiguous case
    x = gc.placeholder(shape, name="x")
    outs = [gc.softmax(x, axis=axis), gc.log_softmax(x, axis=axis)]
    data = (np.random.RandomState(0).randn(*shape) * 3).astype("float32")
    data.flat[0], data.flat[1] = np.inf, np.nan
    got = gc.compile([x], outs, backend="c")(data)
    want = gc.compile([x], outs, backend="numpy")(data)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
