"""Sweep of single ops and small op chains: graphc's C backend against numpy and PyTorch eager,
forward and forward+backward (``gc.grad`` of the sum of the output; torch.autograd.grad), at
realistic training sizes.  Prints a markdown table; a ratio is graphc's time over the best
peer's (above 1: graphc is slower).

    PYTHONPATH=<tree> python benchmarks/sweep_ops.py [--threads 2] [--rounds 7] [--filter SUBSTR]

Timings: every peer of a case is timed in the same process, interleaved round by round, best of
the rounds (per call, compile time and the first call excluded).  numpy's BLAS is slowed by
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, so they are dropped from this process's environment before
numpy loads.
"""
import os

for _v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_v, None)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None

rng = np.random.default_rng(0)
EPS = 1e-5


def _f(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _u(*shape):
    return rng.random(shape).astype(np.float32)


# -- numpy references (forward only) ------------------------------------------------------------

def np_lse(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return np.log(np.exp(x - m).sum(axis=axis)) + np.squeeze(m, axis)


def np_ln(x, g, b):
    mu = x.mean(-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(-1, keepdims=True)
    return d / np.sqrt(var + EPS) * g + b


def np_bn(x, g, b):
    mu = x.mean(0)
    d = x - mu
    var = (d * d).mean(0)
    return g * d / np.sqrt(var + EPS) + b


def np_bce_logits(z, t):
    return np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))


def np_dropout(x, rate=0.5):
    return x * ((np.random.random(x.shape) >= rate).astype(np.float32) * (1.0 / (1 - rate)))


def gc_ln(x, g, b):
    mu = gc.mean(x, axis=-1, keepdims=True)
    d = x - mu
    var = gc.mean(d * d, axis=-1, keepdims=True)
    return d / gc.sqrt(var + EPS) * g + b


def gc_bn(x, g, b):
    c = x.shape[1]
    rm = gc.parameter(np.zeros(c, np.float32), trainable=False)
    rv = gc.parameter(np.ones(c, np.float32), trainable=False)
    return gc.batch_norm(x, g, b, rm, rv, training=True)


def t_bn(x, g, b):
    c = x.shape[1]
    rm, rv = torch.zeros(c), torch.ones(c)
    return F.batch_norm(x, rm, rv, g, b, training=True, eps=EPS)


# (name, input arrays, gc fn, numpy fn or None, torch fn or None, grad wrt input indices or None)
B, T, C = 32, 128, 256
CASES = [
    # broadcasting elementwise
    ("bias add (32,128,256)+(256,)", lambda: [_f(B, T, C), _f(C)],
     lambda x, b: x + b, lambda x, b: x + b, lambda x, b: x + b, [0, 1]),
    ("bias add (32,128,256)+(128,1)", lambda: [_f(B, T, C), _f(T, 1)],
     lambda x, b: x + b, lambda x, b: x + b, lambda x, b: x + b, [0, 1]),
    ("bias add (32,128,256)+(32,1,1)", lambda: [_f(B, T, C), _f(B, 1, 1)],
     lambda x, b: x + b, lambda x, b: x + b, lambda x, b: x + b, [0, 1]),
    ("scale*x+bias (32,128,256)*(1,128,1)+(256,)", lambda: [_f(B, T, C), _f(1, T, 1), _f(C)],
     lambda x, s, b: x * s + b, lambda x, s, b: x * s + b, lambda x, s, b: x * s + b, [0, 1, 2]),
    ("outer (2048,1)*(1,2048)", lambda: [_f(2048, 1), _f(1, 2048)],
     lambda a, b: a * b, lambda a, b: a * b, lambda a, b: a * b, [0, 1]),
    ("outer exp((4096,1)-(1,512))", lambda: [_f(4096, 1), _f(1, 512)],
     lambda a, b: gc.exp(a - b), lambda a, b: np.exp(a - b), lambda a, b: torch.exp(a - b), [0, 1]),
    ("relu(x+b) (4096,1024)+(1024,)", lambda: [_f(4096, 1024), _f(1024)],
     lambda x, b: gc.relu(x + b), lambda x, b: np.maximum(x + b, 0), lambda x, b: torch.relu(x + b),
     [0, 1]),
    # transposes / reshapes
    ("transpose (32,128,256) (0,2,1)", lambda: [_f(B, T, C)],
     lambda x: gc.transpose(x, (0, 2, 1)), lambda x: np.ascontiguousarray(x.transpose(0, 2, 1)),
     lambda x: x.permute(0, 2, 1).contiguous(), [0]),
    ("transpose (32,128,256) (1,0,2)", lambda: [_f(B, T, C)],
     lambda x: gc.transpose(x, (1, 0, 2)), lambda x: np.ascontiguousarray(x.transpose(1, 0, 2)),
     lambda x: x.permute(1, 0, 2).contiguous(), [0]),
    ("transpose (32,128,256) (2,1,0)", lambda: [_f(B, T, C)],
     lambda x: gc.transpose(x, (2, 1, 0)), lambda x: np.ascontiguousarray(x.transpose(2, 1, 0)),
     lambda x: x.permute(2, 1, 0).contiguous(), [0]),
    ("transpose (32,8,128,64) (0,2,1,3)", lambda: [_f(32, 8, 128, 64)],
     lambda x: gc.transpose(x, (0, 2, 1, 3)),
     lambda x: np.ascontiguousarray(x.transpose(0, 2, 1, 3)),
     lambda x: x.permute(0, 2, 1, 3).contiguous(), [0]),
    ("transpose (32,8,128,64) (0,1,3,2)", lambda: [_f(32, 8, 128, 64)],
     lambda x: gc.transpose(x, (0, 1, 3, 2)),
     lambda x: np.ascontiguousarray(x.transpose(0, 1, 3, 2)),
     lambda x: x.permute(0, 1, 3, 2).contiguous(), [0]),
    ("split heads (32,128,512)->(32,8,128,64)", lambda: [_f(32, 128, 512)],
     lambda x: gc.transpose(gc.reshape(x, (32, 128, 8, 64)), (0, 2, 1, 3)),
     lambda x: np.ascontiguousarray(x.reshape(32, 128, 8, 64).transpose(0, 2, 1, 3)),
     lambda x: x.reshape(32, 128, 8, 64).permute(0, 2, 1, 3).contiguous(), [0]),
    ("merge heads (32,8,128,64)->(32,128,512)", lambda: [_f(32, 8, 128, 64)],
     lambda x: gc.reshape(gc.transpose(x, (0, 2, 1, 3)), (32, 128, 512)),
     lambda x: x.transpose(0, 2, 1, 3).reshape(32, 128, 512),
     lambda x: x.permute(0, 2, 1, 3).reshape(32, 128, 512), [0]),
    ("flatten.T (64,16,16,16)->(64,4096).T", lambda: [_f(64, 16, 16, 16)],
     lambda x: gc.transpose(gc.reshape(x, (64, 4096))),
     lambda x: np.ascontiguousarray(x.reshape(64, 4096).T),
     lambda x: x.reshape(64, 4096).t().contiguous(), [0]),
    # batched matmul
    ("bmm (32,128,256)@(256,256)", lambda: [_f(B, T, C), _f(C, C)],
     lambda a, w: a @ w, lambda a, w: a @ w, lambda a, w: a @ w, [0, 1]),
    ("bmm (64,128,64)@(64,64,128)", lambda: [_f(64, 128, 64), _f(64, 64, 128)],
     lambda a, b: a @ b, lambda a, b: a @ b, lambda a, b: a @ b, [0, 1]),
    ("bmm (64,128,128)@(64,128,64)", lambda: [_f(64, 128, 128), _f(64, 128, 64)],
     lambda a, b: a @ b, lambda a, b: a @ b, lambda a, b: a @ b, [0, 1]),
    ("bmm q@k.T (64,128,64)x(64,128,64)", lambda: [_f(64, 128, 64), _f(64, 128, 64)],
     lambda a, b: a @ gc.transpose(b, (0, 2, 1)), lambda a, b: a @ b.transpose(0, 2, 1),
     lambda a, b: a @ b.transpose(1, 2), [0, 1]),
    ("bmm (8,512,512)@(8,512,512)", lambda: [_f(8, 512, 512), _f(8, 512, 512)],
     lambda a, b: a @ b, lambda a, b: a @ b, lambda a, b: a @ b, [0, 1]),
    # reductions / normalization chains
    ("logsumexp (4096,1024) axis -1", lambda: [_f(4096, 1024)],
     lambda x: gc.logsumexp(x, axis=-1), lambda x: np_lse(x, -1),
     lambda x: torch.logsumexp(x, -1), [0]),
    ("logsumexp (4096,1024) axis 0", lambda: [_f(4096, 1024)],
     lambda x: gc.logsumexp(x, axis=0), lambda x: np_lse(x, 0),
     lambda x: torch.logsumexp(x, 0), [0]),
    ("logsumexp (256,10) full", lambda: [_f(256, 10)],
     lambda x: gc.logsumexp(x), lambda x: np_lse(x.ravel(), 0),
     lambda x: torch.logsumexp(x.reshape(-1), 0), [0]),
    ("layernorm (4096,1024)", lambda: [_f(4096, 1024), _f(1024), _f(1024)],
     gc_ln, np_ln, lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, EPS), [0, 1, 2]),
    ("layernorm (32,128,512)", lambda: [_f(32, 128, 512), _f(512), _f(512)],
     gc_ln, np_ln, lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, EPS), [0, 1, 2]),
    ("batchnorm train (256,1024)", lambda: [_f(256, 1024), _f(1024), _f(1024)],
     gc_bn, np_bn, t_bn, [0, 1, 2]),
    ("batchnorm train (4096,256)", lambda: [_f(4096, 256), _f(256), _f(256)],
     gc_bn, np_bn, t_bn, [0, 1, 2]),
    # where / comparisons
    ("where(x>y,x,y) (4096,1024)", lambda: [_f(4096, 1024), _f(4096, 1024)],
     lambda x, y: gc.where(gc.greater(x, y), x, y), lambda x, y: np.where(x > y, x, y),
     lambda x, y: torch.where(x > y, x, y), [0, 1]),
    ("where(x>0,x,0.1x) (4096,1024)", lambda: [_f(4096, 1024)],
     lambda x: gc.where(gc.greater(x, 0.0), x, 0.1 * x), lambda x: np.where(x > 0, x, 0.1 * x),
     lambda x: torch.where(x > 0, x, 0.1 * x), [0]),
    ("less(x,y) -> bool (4096,1024)", lambda: [_f(4096, 1024), _f(4096, 1024)],
     lambda x, y: gc.less(x, y), lambda x, y: x < y, lambda x, y: x < y, None),
    ("where(x>0.5 bcast (1024,)) (4096,1024)", lambda: [_f(4096, 1024), _f(1024)],
     lambda x, m: gc.where(gc.greater(m, 0.5), x, 0.0), lambda x, m: np.where(m > 0.5, x, 0.0),
     lambda x, m: torch.where(m > 0.5, x, 0.0), [0]),
    # training layers / losses
    ("dropout 0.5 (4096,1024)", lambda: [_f(4096, 1024)],
     lambda x: gc.dropout(x, 0.5, True), np_dropout, lambda x: F.dropout(x, 0.5, True), [0]),
    ("dropout 0.1 (128,4096)", lambda: [_f(128, 4096)],
     lambda x: gc.dropout(x, 0.1, True), lambda x: np_dropout(x, 0.1),
     lambda x: F.dropout(x, 0.1, True), [0]),
    ("l2_penalty 4 params (MLP 784-1024-1024-10)",
     lambda: [_f(784, 1024), _f(1024, 1024), _f(1024, 10), _f(1024)],
     lambda *ps: gc.l2_penalty(list(ps)), lambda *ps: sum(np.sum(p * p) for p in ps),
     lambda *ps: sum((p * p).sum() for p in ps), [0, 1, 2, 3]),
    ("l2_penalty 8 small params", lambda: [_f(256, 128), _f(128), _f(128, 64), _f(64), _f(64, 32),
                                           _f(32), _f(32, 10), _f(10)],
     lambda *ps: gc.l2_penalty(list(ps)), lambda *ps: sum(np.sum(p * p) for p in ps),
     lambda *ps: sum((p * p).sum() for p in ps), list(range(8))),
    ("bce_with_logits (4096,1024)", lambda: [_f(4096, 1024), _u(4096, 1024)],
     gc.binary_cross_entropy_with_logits, np_bce_logits,
     F.binary_cross_entropy_with_logits, [0]),
    ("bce_with_logits (256,1)", lambda: [_f(256, 1), _u(256, 1)],
     gc.binary_cross_entropy_with_logits, np_bce_logits,
     F.binary_cross_entropy_with_logits, [0]),
    ("mse (4096,1024)", lambda: [_f(4096, 1024), _f(4096, 1024)],
     gc.mse, lambda p, t: np.mean((p - t) ** 2), F.mse_loss, [0]),
    ("mse (256,10)", lambda: [_f(256, 10), _f(256, 10)],
     gc.mse, lambda p, t: np.mean((p - t) ** 2), F.mse_loss, [0]),
]


def timer(fn, target=0.003):
    """Calls per timed batch so one batch takes about ``target`` seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(2000, int(target / dt)))


def bench(fns, rounds):
    """Best per-call time of each of ``fns`` (None entries skipped), interleaved round by round."""
    ns = [timer(f) if f is not None else 0 for f in fns]
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            if f is None:
                continue
            n = ns[i]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            best[i] = min(best[i], (time.perf_counter() - t0) / n)
    return [b if b != float("inf") else None for b in best]


def make_peers(case, backward):
    name, mk, gfn, nfn, tfn, wrt = case
    arrays = mk()
    phs = [gc.placeholder(a.shape, name=f"in{i}") for i, a in enumerate(arrays)]
    out = gfn(*phs)
    outs = [out]
    if backward:
        if wrt is None:
            return None
        cost = out if out.shape == () else gc.sum(out)
        outs = [out] + gc.grad(cost, [phs[i] for i in wrt])
    f = gc.compile(phs, outs, backend="c")
    g_call = (lambda: f(*arrays))
    n_call = (lambda: nfn(*arrays)) if (nfn is not None and not backward) else None
    t_call = None
    if torch is not None and tfn is not None:
        tens = [torch.from_numpy(a.copy()) for a in arrays]
        if backward:
            for i in wrt:
                tens[i].requires_grad_(True)
            req = [tens[i] for i in wrt]

            def t_call():
                o = tfn(*tens)
                return torch.autograd.grad(o.sum(), req)
        else:
            def t_call():
                with torch.no_grad():
                    return tfn(*tens)
    return [g_call, n_call, t_call]


def fmt(t):
    return "—" if t is None else f"{t * 1e6:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--filter", default="")
    ap.add_argument("--fwd-only", action="store_true")
    args = ap.parse_args()
    gc.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print("| case | pass | graphc us | numpy us | torch us | graphc / best peer |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    worst = []
    for case in CASES:
        if args.filter and args.filter not in case[0]:
            continue
        for backward in ((False,) if args.fwd_only else (False, True)):
            peers = make_peers(case, backward)
            if peers is None:
                continue
            tg, tn, tt = bench(peers, args.rounds)
            peer = min([t for t in (tn, tt) if t is not None], default=None)
            ratio = tg / peer if peer else None
            rs = "—" if ratio is None else f"{ratio:.2f}" + (" **" if ratio > 2 else "")
            print(f"| {case[0]} | {'fwd+bwd' if backward else 'fwd'} | {fmt(tg)} | {fmt(tn)} | "
                  f"{fmt(tt)} | {rs} |", flush=True)
            if ratio is not None:
                worst.append((ratio, case[0], backward))
    worst.sort(reverse=True)
    print("\nworst:", ", ".join(f"{n} ({'fwd+bwd' if b else 'fwd'}) {r:.2f}x"
                                 for r, n, b in worst[:8]))


if __name__ == "__main__":
    main()
