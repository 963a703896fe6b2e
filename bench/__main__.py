"""Run every benchmark and print its table of ratios; save the rows and draw the chart.

    python -m bench                 # full run (about 10 minutes)
    python -m bench --quick         # tiny sizes: checks that every benchmark runs
    python -m bench --only crud,drain
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import time

from bench._harness import ROOT, Row

BENCHMARKS = ["drain", "crud", "latency", "recovery", "memory", "fanout", "live_query", "writer", "backup", "bulk",
              "replication"]


def machine() -> dict[str, str]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"python": platform.python_version(), "cpus": str(os.cpu_count()), "cpu": cpu,
            "system": f"{platform.system()} {platform.release()}", "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    results: dict[str, list[dict]] = {}
    missed: list[str] = []
    for name in args.only.split(","):
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        rows: list[Row] = module.main(extra)
        print(f"({name}: {time.perf_counter() - started:.0f} s)")
        results[name] = [dataclasses.asdict(r) for r in rows]
        missed += [f"{name}: {r.server} {r.measure} {r.contender}" for r in rows if r.met is False]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine(), "quick": args.quick, "results": results}, f, indent=1)
    print(f"\nrows saved to {args.out}")
    if not args.quick:
        from bench import chart

        print(f"chart saved to {chart.draw(args.out)}")
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
