"""Draw docs/benchmarks.png from a results file: drain rate and latency per client/transport."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench._harness import ROOT


def draw(results_path: str, out: Path = ROOT / "docs" / "benchmarks.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(results_path).read_text())["results"]
    drain = [r for r in data.get("drain", []) if r["unit"].startswith("changes/s")]
    latency = [r for r in data.get("latency", []) if r["unit"] == "ms"]
    height = max(5.0, 0.24 * max(len(drain), len(latency)) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(14, height))
    if drain:
        labels = [f"{r['server']} · {'1 KB docs' if 'include_docs' in r['measure'] else 'small'} · {r['contender']}"
                  for r in drain]
        colors = ["tab:blue" if r["contender"].startswith("cloudsync") else "tab:gray" for r in drain]
        axes[0].barh(range(len(drain)), [r["value"] / 1000 for r in drain], color=colors)
        axes[0].set_yticks(range(len(drain)), labels, fontsize=7)
        axes[0].invert_yaxis()
        axes[0].set_xlabel("backlog drain, thousand changes/s (higher is better)")
    if latency:
        labels = [f"{r['server']} {r['contender']} {r['measure']}" for r in latency]
        colors = ["tab:orange" if "p99" in r["measure"] else "tab:green" for r in latency]
        axes[1].barh(range(len(latency)), [r["value"] for r in latency], color=colors)
        axes[1].set_yticks(range(len(latency)), labels, fontsize=7)
        axes[1].invert_yaxis()
        axes[1].set_xlabel("latency, ms (lower is better; green p50, orange p99)")
    fig.suptitle("cloudsync vs peers, same server, same run (blue: cloudsync)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "bench" / "results" / "latest.json")))
