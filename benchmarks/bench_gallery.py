"""Gallery benchmark: time to first paint of `index.html` with N jobs (default 10,000) in
headless Chromium; prints numbers, asserts nothing.

The jobs are a mix of statuses, models and aspect ratios; every completed job has a real MP4 on
disk (hard links to the simulator's sample clip). For each round it measures:
- render: writing the page in Python (seconds, and its size),
- first paint / first contentful paint, largest contentful paint, DOMContentLoaded, the script ready (filters wired up)
  and the load event, as the page's own Performance API reports them,
- a filter change (status=failed) and a sort change, timed inside the page.

The baseline, in alternating rounds, is the same page with every video asking for its metadata
at once (what the page did before lazy loading); the median ratio of load times is printed.

Quick run: python benchmarks/bench_gallery.py --jobs 2000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chromium import chromium_binary, headless_chromium

from octobatch.gallery import page as gallery_page
from octobatch.gallery import write_gallery
from octobatch.manifest import Manifest, load_manifest
from octobatch.state import LockEntry, LockState, Status

STATUSES = [Status.COMPLETED] * 8 + [Status.FAILED, Status.RUNNING]
ASPECTS = ["16:9", "9:16"]

# Installed before the page loads, so the largest contentful paint (the first cards, in
# practice) is observed from the start.
_WATCH_LCP = """
(() => {
  window.__lcp = null;
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__lcp = e.startTime; })
    .observe({type: 'largest-contentful-paint', buffered: true});
})()
"""

_TIMINGS = """
(() => {
  const paint = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
  const nav = performance.getEntriesByType('navigation')[0];
  const ready = performance.getEntriesByName('octobatch-ready')[0];
  return {first_paint: paint['first-paint'], first_contentful_paint: paint['first-contentful-paint'],
          dom_content_loaded: nav.domContentLoadedEventEnd, ready: ready ? ready.startTime : null,
          load: nav.loadEventEnd, lcp: window.__lcp, cards: document.querySelectorAll('article.card').length};
})()
"""

# A filter and a sort as the toolbar makes them; timed until the next frame is drawn.
_INTERACTION = """
(async () => {
  const frame = () => new Promise(ok => requestAnimationFrame(() => setTimeout(ok, 0)));
  const set = (name, value) => { const s = document.querySelector(`#toolbar [name=${name}]`);
    s.value = value; s.dispatchEvent(new Event('change', {bubbles: true})); };
  let t = performance.now(); set('status', 'failed'); await frame();
  const filter = performance.now() - t;
  t = performance.now(); set('sort', 'id'); await frame();
  const sort = performance.now() - t;
  return {filter, sort, shown: document.getElementById('shown').textContent};
})()
"""


def build(directory: Path, jobs: int) -> tuple[Manifest, LockState]:
    lines = ["version: 1", "defaults:", "  model: omni-fast", "  seconds: 8", "jobs:"]
    per_entry = 100
    for entry, start in enumerate(range(0, jobs, per_entry)):
        count = min(per_entry, jobs - start)
        lines += [
            f"  - id: 'shot-{start}-{{n}}'",
            f"    prompt: 'Shot {{n}} of batch {start}: a slow pan across a misty valley at dawn'",
            f"    aspect_ratio: '{ASPECTS[entry % len(ASPECTS)]}'",
            "    matrix:",
            f"      n: [{', '.join(str(i) for i in range(count))}]",
        ]
    path = directory / "bench.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = load_manifest(path, output_dir=directory / "out")
    manifest.output_dir.mkdir()
    sample = resources.files("octobatch.simulator").joinpath("assets", "sample.mp4").read_bytes()
    clip = directory / "sample.mp4"
    clip.write_bytes(sample)
    entries = {}
    for i, job in enumerate(manifest.jobs):
        status = STATUSES[i % len(STATUSES)]
        output = None
        if status is Status.COMPLETED:
            video = manifest.output_dir / f"{job.id}.mp4"
            os.link(clip, video)
            output = os.path.relpath(video, manifest.lock_path.parent)
        entries[job.id] = LockEntry(
            spec_hash=job.spec_hash, model=job.model, status=status, output=output,
            task_id=f"video_{i:08x}", submitted_at="2026-05-01T12:00:00Z",
            completed_at=f"2026-05-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z" if output else None,
            error={"code": "generation_failed", "message": "no"} if status is Status.FAILED else None,
        )
    return manifest, LockState(manifest=path.name, jobs=entries)


async def measure(index: Path, profile: Path) -> dict[str, Any]:
    async with headless_chromium(chromium_binary(), profile) as page:
        await page.call("Page.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=_WATCH_LCP)
        await page.navigate(index.as_uri())
        timings: dict[str, Any] = await page.evaluate(_TIMINGS)
        timings.update(await page.evaluate(_INTERACTION))
    return timings


def render(manifest: Manifest, state: LockState, eager: int) -> tuple[float, int]:
    gallery_page.EAGER_VIDEOS = eager
    start = time.perf_counter()
    index = write_gallery(manifest, state)
    return time.perf_counter() - start, index.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="skip the eager-video baseline")
    args = parser.parse_args()

    lazy_eager = gallery_page.EAGER_VIDEOS
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest, state = build(work, args.jobs)
        index = manifest.output_dir / "index.html"
        print(f"{len(manifest.jobs)} jobs, {sum(1 for e in state.jobs.values() if e.output)} videos")
        variants = [("lazy", lazy_eager)] + ([] if args.no_baseline else [("eager", 10**9)])
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
        for round_no in range(args.rounds):
            for name, eager in variants if round_no % 2 == 0 else variants[::-1]:
                seconds, size = render(manifest, state, eager)
                timings = asyncio.run(measure(index, work / f"profile-{name}-{round_no}"))
                timings.update(render_s=seconds, bytes=size)
                results[name].append(timings)
                print(f"round {round_no + 1} {name:5}: render {seconds:.2f} s ({size / 1e6:.1f} MB),"
                      f" first paint {timings['first_paint']:.0f} ms,"
                      f" first contentful paint {timings['first_contentful_paint']:.0f} ms,"
                      f" largest contentful paint {timings['lcp']:.0f} ms,"
                      f" DOMContentLoaded {timings['dom_content_loaded']:.0f} ms,"
                      f" script ready {timings['ready']:.0f} ms, load {timings['load']:.0f} ms;"
                      f" filter {timings['filter']:.0f} ms, sort {timings['sort']:.0f} ms"
                      f" ({timings['shown']})")
        for name, rows in results.items():
            med = {k: statistics.median(r[k] for r in rows)
                   for k in ("first_contentful_paint", "lcp", "ready", "load", "filter", "sort")}
            print(f"median {name:5}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in med.items()))
        if "eager" in results:
            ratios = [e["load"] / lazy["load"] for lazy, e in zip(results["lazy"], results["eager"])]
            print(f"load time, eager baseline / lazy: median ratio {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
