"""Validate + publish throughput and memory, against ``frictionless validate`` in the same run.

Issue #3's target: end-to-end throughput ≥ 3× frictionless validating the same file, the same
findings on invalid files, and peak memory flat (≤ 1.5×) from 100,000 to 1,000,000 rows.

Files are penduduk-per-kelurahan shaped (generated, valid; plus a copy with errors sprinkled
in). Each measured step runs in its own process, so its peak RSS is its own:

* ``frictionless``: ``Resource.validate(limit_errors=0)`` in a package with the region-code
  reference lists, i.e. frictionless checking the schema's types, constraints, primary and
  foreign keys, and nothing else;
* ``publish``: what the portal's ingest does with a harvested CSV: ``check_table`` (schema,
  region codes, personal-data and binary scans; when it finds type errors in numeric columns,
  the Indonesian number normalisation and a second check, as ingest does) and, for
  a valid file, ``build_rows_file`` (the version's read-only SQLite rows file).

The figures are printed and written to the "Validate + publish" section of docs/benchmarks.md.

Both steps run in turn, ``--repeat`` rounds (default 2), and each keeps its fastest run, so
both meet the same load on a shared machine. When frictionless would need more than
``--baseline-budget`` seconds for the large file, it is measured on a 200,000-row prefix and
throughputs (rows/s) are compared.

Run: ``.venv/bin/python -m tests.bench.bench_publish [--rows 100000 1000000]
[--invalid-rows 100000] [--repeat 2] [--baseline-budget 300] [--no-docs]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Validate + publish"
SCHEMA_NAME = "penduduk-per-kelurahan"
#: Seconds frictionless may take on the large file (all rounds); beyond, a prefix is used.
BASELINE_BUDGET_S = 300
#: Rounds per measurement; each step keeps its fastest run (the machine may be shared).
REPEAT = 2
BASELINE_PREFIX = 200_000
#: One row in this many carries an error in the invalid variant.
ERROR_EVERY = 997


# --- data -----------------------------------------------------------------------------------


def bench_schema() -> dict[str, Any]:
    """The real schema, with ``tahun`` allowed over 0000–9999 instead of 2000–2100.

    Its primary key (kelurahan, sex, year, semester) over 29 kelurahan admits 11,716 distinct
    rows with the real year range: a valid million-row file needs more years. Every other
    constraint, the primary key and both region-code foreign keys are the real ones.
    """
    from harvesters.checks import load_schema

    schema = load_schema(SCHEMA_NAME)
    for field in schema["fields"]:
        if field["name"] == "tahun":
            field["constraints"] = {**field["constraints"], "minimum": 0, "maximum": 9999}
    return schema


def _valid_rows(count: int) -> Iterator[list[str]]:
    from harvesters import reference

    rows = reference.load_rows("wilayah", reference.DEFAULT_REFERENCE_DIR)
    names = {row["kode"]: row["nama"] for row in rows}
    kelurahan = [row for row in rows if row["level"] == "kelurahan"]
    rnd = random.Random(6171)  # noqa: S311 - fixture data
    produced = 0
    for year in range(10_000):
        for semester in ("1", "2"):
            for kel in kelurahan:
                for sex in ("Laki-laki", "Perempuan"):
                    if produced == count:
                        return
                    yield [
                        kel["induk"], names[kel["induk"]], kel["kode"], kel["nama"], sex,
                        str(rnd.randint(500, 25_000)), "Jiwa", semester, f"{year:04d}",
                    ]  # fmt: skip
                    produced += 1


def _spoil(kind: int, row: list[str], previous: list[str]) -> list[str]:
    """One of ten kinds of error, as OPD files have them."""
    if kind == 0:
        return [*row[:5], "banyak", *row[6:]]  # text in a number column
    if kind == 1:
        return [*row[:5], "-12", *row[6:]]  # negative count
    if kind == 2:
        return [*row[:4], "L", *row[5:]]  # not in the enum
    if kind == 3:
        return ["61.71.9", *row[1:]]  # bad pattern, and no such kecamatan
    if kind == 4:
        return [*row[:3], "", *row[4:]]  # required cell empty
    if kind == 5:
        return list(previous)  # duplicate primary key
    if kind == 6:
        return [*row, "catatan"]  # extra cell
    if kind == 7:
        return row[:5]  # missing cells
    if kind == 8:
        return [""] * len(row)  # blank row
    return [*row[:2], "61.71.01.1999", *row[3:]]  # region code not in the reference list


def generate(path: Path, count: int, *, invalid: bool = False) -> int:
    """Write ``count`` data rows; returns how many were spoilt."""
    spoilt = 0
    previous: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([field["name"] for field in bench_schema()["fields"]])
        for index, row in enumerate(_valid_rows(count)):
            out = row
            if invalid and index % ERROR_EVERY == ERROR_EVERY - 1:
                out = _spoil(spoilt % 10, row, previous)
                spoilt += 1
            writer.writerow(out)
            previous = row
    return spoilt


def prefix(source: Path, target: Path, rows: int) -> None:
    """The header and the first ``rows`` data rows of ``source`` (valid on their own)."""
    with source.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as out:
        out.writelines(islice(src, rows + 1))


# --- measured steps (each in a child process) -------------------------------------------------


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step_frictionless(path: Path, schema: dict[str, Any], _: Path) -> dict[str, Any]:
    from frictionless import Package, Schema

    from harvesters import reference
    from harvesters.tables import open_resource

    started, cpu = time.perf_counter(), time.process_time()
    resource = open_resource(path, Schema.from_descriptor(schema), name="tabel")
    refs = [
        reference.build_resource(name, reference.DEFAULT_REFERENCE_DIR)
        for name in sorted(reference.referenced_resources(schema))
    ]
    Package(resources=[resource, *refs])
    report = resource.validate(limit_errors=0)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    findings = []
    for error in [*report.errors, *(e for task in report.tasks for e in task.errors)]:
        field = getattr(error, "field_name", None) or None
        if error.type == "foreign-key":
            field = error.field_names[0]
        findings.append((getattr(error, "row_number", None), field, error.type))
    rows = report.tasks[0].stats.get("rows", 0) if report.tasks else 0
    return {"rows": rows, "seconds": seconds, "cpu": cpu, "findings": findings}


def _step_publish(path: Path, schema: dict[str, Any], work: Path) -> dict[str, Any]:
    import inspect

    from harvesters import fastcheck
    from harvesters.checks import Severity, check_table
    from harvesters.numbers import may_need_converting, normalise_numbers
    from portal import datastore

    used: dict[str, bool] = {}
    real_check = fastcheck.fast_check

    def spy_check(*args: Any, **kwargs: Any) -> Any:
        result = real_check(*args, **kwargs)
        used["check"] = result is not None
        return result

    fastcheck.fast_check = spy_check
    real_rows = getattr(datastore, "typed_chunks", None)
    if real_rows is not None:

        def spy_rows(*args: Any, **kwargs: Any) -> Any:
            result = real_rows(*args, **kwargs)
            used["rows"] = result is not None
            return result

        datastore.typed_chunks = spy_rows  # type: ignore[attr-defined]
    # As portal.services.ingest does it: the checks fill the rows file in the same pass when
    # check_table and the datastore can (RowsWriter), else build_rows_file reads the table.
    same_pass = "rows" in inspect.signature(check_table).parameters
    writer_class = getattr(datastore, "RowsWriter", None) if same_pass else None
    target = work / (path.name + ".sqlite")

    phases: dict[str, float] = {"numbers": 0.0}
    started, cpu = time.perf_counter(), time.process_time()
    table = path
    writer = writer_class(target) if writer_class is not None else None

    def check() -> Any:
        if writer is not None:
            return check_table(table, schema, rows=writer)  # type: ignore[call-arg]
        return check_table(table, schema)

    report = check()
    phases["check"] = time.perf_counter() - started
    type_errors = (i.field for i in report.issues if i.code == "type-error")
    if may_need_converting(type_errors, schema):  # as ingest: convert and check again
        converted = work / (path.name + ".numbers.csv")
        if normalise_numbers(path, converted, schema):
            table = converted
            phases["numbers"] = time.perf_counter() - started - phases["check"]
            if writer is not None:
                writer.discard()
                writer = writer_class(target)  # type: ignore[misc]
            report = check()
            phases["check"] = time.perf_counter() - started - phases["numbers"]
    written = None
    if report.valid and writer is not None and writer.complete:
        written = writer.finish()
        used["rows"] = True
    elif report.valid:
        written = datastore.build_rows_file(table, report.schema, target)
    if writer is not None:
        writer.discard()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    phases["rows file"] = seconds - phases["check"] - phases["numbers"]
    findings = [
        (issue.row, issue.field, "foreign-key" if issue.code == "region-code" else issue.code)
        for issue in report.issues
        if issue.severity is Severity.ERROR and not issue.code.startswith("pii-")
    ]
    return {
        "rows": report.row_count,
        "seconds": seconds,
        "cpu": cpu,
        "findings": findings,
        "valid": report.valid,
        "rows_written": written,
        "fast_check": used.get("check", False),
        "fast_rows": used.get("rows", False),
        "same_pass": writer is not None and bool(written) and used.get("check", False),
        "phases": phases,
    }


STEPS = {"frictionless": _step_frictionless, "publish": _step_publish}


def run_step(step: str, path: Path, schema_path: Path, work: Path) -> dict[str, Any]:
    """Run one step in a fresh interpreter and return its figures (peak RSS included)."""
    command = [
        sys.executable, "-m", "tests.bench.bench_publish", "--step", step,
        "--csv", str(path), "--schema", str(schema_path), "--work", str(work),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"step {step} on {path.name} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["findings"] = [tuple(f) for f in result["findings"]]
    return result


def _child(step: str, path: Path, schema_path: Path, work: Path) -> None:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    result = STEPS[step](path, schema, work)
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


# --- the run ----------------------------------------------------------------------------------


def _line(label: str, result: dict[str, Any]) -> str:
    rate = result["rows"] / result["seconds"] if result["seconds"] else 0.0
    return (
        f"| {label} | {result['rows']:,} | {result['seconds']:.1f} | {result['cpu']:.1f} "
        f"| {rate:,.0f} | {result['peak_rss_mb']:.0f} MB |"
    )


def _rate(result: dict[str, Any]) -> float:
    return float(result["rows"]) / float(result["seconds"])


def best_of(
    repeat: int, steps: Sequence[tuple[str, Path]], schema_path: Path, work: Path
) -> list[dict[str, Any]]:
    """Run the steps in turn, ``repeat`` rounds, so each meets the same machine load; keep
    each step's fastest run, with the highest peak RSS of its runs."""
    best: list[dict[str, Any]] = [{} for _ in steps]
    for _ in range(repeat):
        for index, (step, path) in enumerate(steps):
            result = run_step(step, path, schema_path, work)
            peak = max(result["peak_rss_mb"], best[index].get("peak_rss_mb", 0.0))
            if not best[index] or result["seconds"] < best[index]["seconds"]:
                best[index] = result
            best[index]["peak_rss_mb"] = peak
    return best


def measure(
    sizes: Sequence[int], invalid_rows: int, budget: float, repeat: int, work: Path
) -> dict[str, Any]:
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    largest = max(sizes)
    schema_path = work / "schema.json"
    schema_path.write_text(json.dumps(bench_schema()), encoding="utf-8")
    say(f"generating {largest:,} rows …")
    full = work / f"penduduk-{largest}.csv"
    generate(full, largest)
    files = {largest: full}
    for size in sizes:
        if size != largest:
            files[size] = work / f"penduduk-{size}.csv"
            prefix(full, files[size], size)
    runs: list[tuple[str, dict[str, Any]]] = []
    publish: dict[int, dict[str, Any]] = {}
    baseline: dict[int, dict[str, Any]] = {}
    for size in sorted(sizes):
        target = size
        if size == largest and size != min(sizes):
            smallest = baseline[min(sizes)]
            estimate = smallest["seconds"] * size / smallest["rows"] * repeat
            if estimate > budget:
                target = min(BASELINE_PREFIX, size)
                if target not in files:
                    files[target] = work / f"penduduk-{target}.csv"
                    prefix(full, files[target], target)
                say(f"frictionless on {size:,} rows would take ~{estimate:.0f} s: "
                    f"measuring its throughput on a {target:,}-row prefix")  # fmt: skip
        say(f"frictionless validate ({target:,} rows) and validate + publish ({size:,}), "
            f"best of {repeat} …")  # fmt: skip
        steps = [("frictionless", files[target]), ("publish", files[size])]
        baseline[size], publish[size] = best_of(repeat, steps, schema_path, work)
        if not publish[size]["valid"] or publish[size]["rows_written"] != size:
            raise RuntimeError(f"the valid {size:,}-row file did not publish: {publish[size]}")
        runs += [("frictionless validate", baseline[size]), ("validate + publish", publish[size])]
    bad = work / f"penduduk-invalid-{invalid_rows}.csv"
    spoilt = generate(bad, invalid_rows, invalid=True)
    say(f"invalid file, {invalid_rows:,} rows with {spoilt} spoilt: both, best of {repeat} …")
    steps = [("frictionless", bad), ("publish", bad)]
    bad_baseline, bad_publish = best_of(repeat, steps, schema_path, work)
    runs += [("frictionless validate, invalid", bad_baseline)]
    runs += [("validate (quarantined), invalid", bad_publish)]
    return {
        "sizes": sorted(sizes),
        "repeat": repeat,
        "runs": runs,
        "publish": publish,
        "baseline": baseline,
        "invalid": {
            "rows": invalid_rows,
            "spoilt": spoilt,
            "frictionless": bad_baseline,
            "publish": bad_publish,
        },
    }


def report(figures: dict[str, Any]) -> str:
    sizes = figures["sizes"]
    small, large = min(sizes), max(sizes)
    publish, baseline = figures["publish"], figures["baseline"]
    ratio = {size: _rate(publish[size]) / _rate(baseline[size]) for size in sizes}
    cpu_ratio = {
        size: (baseline[size]["cpu"] / baseline[size]["rows"])
        / (publish[size]["cpu"] / publish[size]["rows"])
        for size in sizes
    }
    memory = publish[large]["peak_rss_mb"] / publish[small]["peak_rss_mb"]
    bad = figures["invalid"]
    theirs, ours = bad["frictionless"]["findings"], bad["publish"]["findings"]
    same = sorted(map(repr, theirs)) == sorted(map(repr, ours))
    fast = publish[large]["fast_check"] and publish[large]["fast_rows"]
    one_pass = publish[large].get("same_pass", False)
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    lines = [
        SECTION,
        "",
        f"Measured {dt.date.today().isoformat()} with `make bench` on {cpu}, "
        f"{os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, frictionless "
        f"{metadata.version('frictionless')}, SQLite {sqlite3.sqlite_version}. Fast path "
        f"{'taken' if fast else 'NOT taken (wiring of harvesters/fastcheck.py missing)'}"
        f"{', rows file filled in the same pass as the checks' if one_pass else ''}.",
        "",
        "| step | rows | wall s | CPU s | rows/s | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(_line(label, result) for label, result in figures["runs"]),
        "",
        *(
            f"- **{size:,} rows: validate + publish runs at {ratio[size]:.1f}× the throughput "
            f"of frictionless validate alone** (target ≥ 3×); {cpu_ratio[size]:.1f}× in CPU "
            "time per row"
            + (
                f"; frictionless measured on the first {baseline[size]['rows']:,} rows, "
                "throughput compared"
                if baseline[size]["rows"] != size
                else ""
            )
            + "."
            for size in sizes
        ),
        f"- Where validate + publish spends its time at {large:,} rows: "
        + ", ".join(f"{name} {secs:.1f} s" for name, secs in publish[large]["phases"].items())
        + " (the rows file: indexing each column of the rows written during the check).",
        f"- Peak memory of validate + publish: {publish[small]['peak_rss_mb']:.0f} MB at "
        f"{small:,} rows, {publish[large]['peak_rss_mb']:.0f} MB at {large:,} rows: "
        f"{memory:.2f}× (target ≤ 1.5×).",
        f"- Invalid file ({bad['rows']:,} rows, {bad['spoilt']} spoilt with ten kinds of "
        f"error): frictionless {len(theirs)} findings, validate + publish {len(ours)}; "
        f"the (row, field, type) lists are {'identical' if same else 'DIFFERENT'}.",
        "",
        "Method: penduduk-per-kelurahan shaped CSV files are generated (the schema's year range "
        "is widened to 0000–9999 so a million rows can have distinct primary keys; every other "
        "constraint and both region-code foreign keys are the real ones). Each step runs in its "
        "own process, timed from its first call to its result, peak RSS read from VmHWM; the "
        f"two steps alternate for {figures['repeat']} rounds and each keeps its fastest run, so "
        "both meet the same load. *frictionless validate* is `Resource.validate(limit_errors=0)` "
        "in a package with the region reference lists; *validate + publish* is what the ingest "
        "does with a harvested CSV: `check_table` (schema, region codes, personal-data and "
        "binary scans; the Indonesian number normalisation and a second check only when numeric "
        "columns have type errors) filling the rows file in the same pass when it can, "
        "then indexing it into place (otherwise `build_rows_file` reads the table again). "
        "Ratios compare rows/s measured in the same run.",
        "",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace (or add) the section in docs/benchmarks.md, leaving other sections alone."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--invalid-rows", type=int, default=100_000)
    parser.add_argument("--baseline-budget", type=float, default=BASELINE_BUDGET_S)
    parser.add_argument("--repeat", type=int, default=REPEAT, help="rounds; fastest kept")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--schema", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.step:
        _child(args.step, args.csv, args.schema, args.work)
        return
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as work:
        figures = measure(
            args.rows, args.invalid_rows, args.baseline_budget, args.repeat, Path(work)
        )
    section = report(figures)
    print(section)
    if not args.no_docs:
        write_docs(section)
        print(f"written to {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
