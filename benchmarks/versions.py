"""compute at two revisions of normstat on the same corpus, interleaved in one run: the ratio
new ÷ old time is what a change cost the default path (goal: within 5%).

The old revision is checked out into a temporary git worktree and imported from there (the
same virtual environment, so only normstat's own code differs). Each timing is a fresh
process that computes once to warm up (imports, the page cache), then takes the best of three;
old and new alternate, so a load that drifts during the run hits both alike.

Usage: python benchmarks/versions.py OLD_REV [--new PATH] [--only jpeg digits] [--repeat 5]
                                     [--workers 1 2]
The corpora are throughput.py's (corpus.py builds them into /tmp/normstat-bench).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CODE = """
import sys, time
sys.path.insert(0, {tree!r})
import normstat
assert normstat.__file__.startswith({tree!r}), normstat.__file__
normstat.compute({data!r}, workers={workers})
times = []
for _ in range(3):
    t = time.perf_counter()
    normstat.compute({data!r}, workers={workers})
    times.append(time.perf_counter() - t)
print(min(times))
"""


def seconds(tree: Path, data: Path, workers: int) -> float:
    env = dict(os.environ)
    if workers == 1:
        env["NORMSTAT_IN_PROCESS"] = "1"  # one core, no pool start-up in the figure
    code = CODE.format(tree=str(tree), data=str(data), workers=workers)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the git revision to compare against (e.g. v0.2.0, HEAD~5)")
    parser.add_argument("--new", type=Path, default=HERE.parent, help="the tree to measure")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "normstat-bench")
    parser.add_argument("--only", nargs="*", default=["jpeg", "digits"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", nargs="*", type=int, default=[1, 2])
    args = parser.parse_args()
    if any(not (args.data / name).is_dir() for name in args.only):
        subprocess.run([sys.executable, str(HERE / "corpus.py"), str(args.data)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        git = ["git", "-C", str(args.new)]
        subprocess.run([*git, "worktree", "add", "-q", "--detach", str(old), args.old], check=True)
        try:
            summary = {}
            for name in args.only:
                for workers in args.workers:
                    best = {"old": float("inf"), "new": float("inf")}
                    for _ in range(args.repeat):
                        for key, tree in (("old", old), ("new", args.new)):
                            t = seconds(tree, args.data / name, workers)
                            best[key] = min(best[key], t)
                    ratio = best["new"] / best["old"]
                    summary[f"{name}/{workers}"] = round(ratio, 3)
                    print(
                        f"{name:<8} workers {workers}: old {best['old']:.3f} s,"
                        f" new {best['new']:.3f} s, new ÷ old {ratio:.3f}"
                    )
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(old)], check=False)
    print(json.dumps({"old": args.old, "new_over_old": summary}))


if __name__ == "__main__":
    main()
