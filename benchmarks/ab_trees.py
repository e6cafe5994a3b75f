"""A/B the training step of two checkouts of graphc on this machine.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_trees.py /tmp/before . [rounds]

Each case runs in a fresh process per tree (its own compile cache), the trees alternate and
swap order every round, and each tree's best round is kept: on a noisy shared VM this is
fairer than two benchmark runs minutes apart.  Prints before / after per case.
"""
import json
import os
import subprocess
import sys

CASES = [([784, 256, 256, 10], b) for b in (32, 128, 512, 2048)] + \
        [([784, 1024, 1024, 10], b) for b in (32, 128, 512, 2048)]
STEP = """
import sys, json
from graphc.benchmarking import work_train
sizes, b = json.loads(sys.argv[1])
print(work_train('graphc', sizes, b) * 1e3)
"""


def step_ms(tree: str, tag: str, case) -> float:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree),
               GRAPHC_CACHE_DIR=os.path.join(os.environ.get("TMPDIR", "/tmp"), f"graphc-ab-{tag}"))
    out = subprocess.run([sys.executable, "-c", STEP, json.dumps(case)], env=env,
                         capture_output=True, text=True, cwd=tree, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv):
    before, after = argv[1], argv[2]
    rounds = int(argv[3]) if len(argv) > 3 else 3
    trees = [("before", before), ("after", after)]
    best: dict = {}
    for r in range(rounds):
        for case in CASES:
            for tag, tree in (trees if r % 2 == 0 else trees[::-1]):
                key = (tuple(case[0]), case[1], tag)
                best[key] = min(best.get(key, float("inf")), step_ms(tree, tag, case))
    print("| net | batch | before ms | after ms | before / after |\n|---|---|---|---|---|")
    for sizes, b in CASES:
        o, n = best[(tuple(sizes), b, "before")], best[(tuple(sizes), b, "after")]
        print(f"| {'-'.join(map(str, sizes))} | {b} | {o:.3g} | {n:.3g} | {o / n:.2f} |")


if __name__ == "__main__":
    main(sys.argv)
