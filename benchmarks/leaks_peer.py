"""The peer row of benchmarks/leaks.py: imagededup's PHash at its documented threshold
(max_distance_threshold=10) on the folders leaks.py wrote. Runs in its own virtual environment
(see benchmarks/README.md), started by leaks.py as a subprocess: a spec on stdin, one JSON
object on stdout.

imagededup's package imports torch and torchvision (for its CNN method) and matplotlib (for
plots) on import, though hashing uses none of them. When torch is not installed, stub modules for
torch and torchvision are put on ``sys.meta_path`` in this process only, and the output says so.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

THRESHOLD = 10  # imagededup's documented max_distance_threshold


class _AnyType(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyType(name, (_Anything,), {})


class _Anything(metaclass=_AnyType):
    """Stands for any torch/torchvision object at import time (subclassable, callable, and any
    attribute of it is another such object)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Anything:
        return self


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyType(name, (_Anything,), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    ROOTS = ("torch", "torchvision")

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _import_phash() -> tuple[Any, str]:
    note = "imagededup with its own torch"
    if importlib.util.find_spec("torch") is None:
        sys.meta_path.insert(0, _StubFinder())
        note = "imagededup hashing; torch/torchvision stubbed in this subprocess (unused by PHash)"
    from imagededup.methods import PHash

    return PHash(verbose=False), note


def _encode(phasher: Any, folder: str, workers: int) -> tuple[dict[str, str], float]:
    t0 = time.perf_counter()
    hashes = phasher.encode_images(image_dir=folder, num_enc_workers=workers)
    return {f"{folder}/{name}": h for name, h in hashes.items()}, time.perf_counter() - t0


def _search(phasher: Any, encodings: dict[str, str], workers: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    found = phasher.find_duplicates(
        encoding_map=encodings, max_distance_threshold=THRESHOLD, num_dist_workers=workers
    )
    return found, time.perf_counter() - t0


def _stem(path: str) -> str:
    return Path(path).stem


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Per transformation: sampled test images whose planted copy is within THRESHOLD bits;
    clean: test images with any plain train image within THRESHOLD bits."""
    phasher, note = _import_phash()
    workers = int(spec["workers"])
    test, t_test = _encode(phasher, spec["test"], workers)
    plain, t_plain = _encode(phasher, spec["plain"], workers)
    found, t_search = _search(phasher, {**test, **plain}, workers)
    flagged = sorted(t for t in test if any(d in plain for d in found.get(t, [])))
    out: dict[str, Any] = {
        "note": note,
        "threshold": THRESHOLD,
        "clean": {"checked": len(test), "flagged": len(flagged), "examples": flagged[:5]},
        "time": {"hash_test_s": t_test, "hash_train_s": t_plain, "search_s": t_search},
        "kinds": {},
    }
    for kind, dirs in spec["kinds"].items():
        ktest, _ = _encode(phasher, dirs["test"], workers)
        planted, _ = _encode(phasher, dirs["planted"], workers)
        # The pair's distance does not depend on the other images: search the sample and its
        # copies alone (all pairs of 10,000 look-alikes, 15 times over, would take an hour).
        found, _ = _search(phasher, {**ktest, **planted}, workers)
        hits = sum(
            any(d in planted and _stem(d) == _stem(t) for d in found.get(t, [])) for t in ktest
        )
        out["kinds"][kind] = {"planted": len(ktest), "found": hits}
    return out


if __name__ == "__main__":
    print(json.dumps(run(json.load(sys.stdin))))
