"""How fast `rows: FILE` validates against the same jobs written out in YAML.

Writes N jobs twice: as a YAML manifest with one entry per job, and as a manifest with one
`rows:` entry reading a CSV file of N rows (same ids, prompts, seconds and aspect ratios).
Loads each in alternating rounds and prints the medians and the median ratio rows/YAML
(target: at most 1.0, i.e. rows as fast as YAML).

    python benchmarks/bench_rows.py [--jobs N] [--rounds R]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

from octobatch.manifest import load_manifest

HEAD = "version: 1\ndefaults: {model: omni-fast, resolution: 720p}\njobs:\n"


def write(directory: Path, jobs: int) -> tuple[Path, Path]:
    rows = [(f"shot-{i:05d}", f"Scene number {i} of the long batch, cinematic light",
             4 + i % 27, "16:9" if i % 2 else "9:16") for i in range(jobs)]
    yaml_path = directory / "written.yaml"
    yaml_path.write_text(HEAD + "".join(
        f"  - {{id: {job_id}, prompt: \"{prompt}\", seconds: {seconds}, "
        f"aspect_ratio: \"{ratio}\"}}\n" for job_id, prompt, seconds, ratio in rows))
    with (directory / "shots.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "prompt", "seconds", "aspect_ratio"])
        out.writerows(rows)
    rows_path = directory / "rows.yaml"
    rows_path.write_text(HEAD + "  - rows: shots.csv\n")
    return yaml_path, rows_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path, rows_path = write(Path(tmp), args.jobs)
        a, b = load_manifest(yaml_path).jobs, load_manifest(rows_path).jobs
        assert [j.spec_hash for j in a] == [j.spec_hash for j in b], "not the same jobs"
        times: dict[str, list[float]] = {"yaml": [], "rows": []}
        for _ in range(args.rounds):
            for name, path in (("yaml", yaml_path), ("rows", rows_path)):
                start = time.perf_counter()
                load_manifest(path)
                times[name].append(time.perf_counter() - start)
        ratio = statistics.median(r / y for r, y in zip(times["rows"], times["yaml"]))
        print(f"{args.jobs:,} jobs, {args.rounds} alternating rounds")
        for name, values in times.items():
            print(f"  {name:<5} median {statistics.median(values):.3f} s  "
                  f"best {min(values):.3f} s")
        print(f"  rows / yaml median ratio {ratio:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
