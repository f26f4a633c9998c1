"""Run the benchmarks: ``python -m tests.bench [NAME ...]``.

Without a name every ``bench_<name>`` module with a ``main()`` runs, in name order; with names
(``publish`` or ``bench_publish``) only those. ``--list`` prints the names. Other options are
passed on to the benchmarks' own parsers (``python -m tests.bench publish --rows 100000``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

PACKAGE = "tests.bench"
HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Callable[[], Any]]:
    """Benchmark name (without ``bench_``) → its ``main`` function."""
    found: dict[str, Callable[[], Any]] = {}
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda i: i.name):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        main = getattr(module, "main", None)
        if callable(main):
            found[info.name.removeprefix("bench_")] = cast(Callable[[], Any], main)
    return found


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args, passed_on = parser.parse_known_args(argv)
    benches = discover()
    if args.list:
        print("\n".join(benches))
        return 0
    wanted = [name.removeprefix("bench_") for name in args.names] or list(benches)
    unknown = [name for name in wanted if name not in benches]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(benches)}")
    # Each main() parses its own options from sys.argv: give it only the ones meant for it.
    sys.argv = [sys.argv[0], *passed_on]
    for name in wanted:
        print(f"== bench {name} ==", flush=True)
        started = time.perf_counter()
        benches[name]()
        print(f"== bench {name}: {time.perf_counter() - started:.0f} s ==\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
