"""Run every benchmark under bench/ and rewrite the README's tables with what they printed.

    python bench/run_all.py [--only assembly,pipeline] [--no-readme]

Each benchmark prints a markdown table (and its target lines). The README holds each one between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; this script replaces what is between them, so the
README always shows the figures of the last run on this machine.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {
    "assembly": ["bench/assembly.py"],
    "pipeline": ["bench/pipeline.py"],
    "embedded": ["bench/embedded.py"],
    "api": ["bench/api.py"],
    "realtime": ["bench/realtime.py"],
    "long_job": ["bench/long_job.py"],
    "chaos": ["bench/chaos.py"],
}


def extract_report(output: str) -> str:
    """The part a reader wants: from the first table line (or context line just before it) onward."""
    lines = output.rstrip().splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if first is None:
        raise ValueError("the benchmark printed no markdown table")
    start = first
    while start > 0 and lines[start - 1].strip() and not lines[start - 1].startswith(("Traceback", "  File")):
        start -= 1
    return "\n".join(lines[start:]).strip()


def replace_section(readme: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(\n<!-- /bench:{name} -->)", re.S)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no <!-- bench:{name} --> section")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    return pattern.sub(
        lambda m: f"{m.group(1)}_Measured {stamp} by `make bench`._\n\n{body}{m.group(2)}", readme
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--no-readme", action="store_true", help="print, do not rewrite README.md")
    args = parser.parse_args(argv)
    chosen = [n for n in (args.only.split(",") if args.only else BENCHMARKS) if n]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}")
    readme_path = ROOT / "README.md"
    reports: dict[str, str] = {}
    failures = 0
    for name in chosen:
        print(f"== {name} ==", flush=True)
        result = subprocess.run([sys.executable, *BENCHMARKS[name]], cwd=ROOT, capture_output=True, text=True)
        print(result.stdout[-4000:])
        if result.returncode != 0:
            print(result.stderr[-4000:], file=sys.stderr)
            print(f"{name}: exited {result.returncode}", file=sys.stderr)
            failures += 1
        try:
            reports[name] = extract_report(result.stdout)
        except ValueError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failures += 1
    if not args.no_readme:
        # Read again: the run takes a while, and the prose around the tables may have changed meanwhile.
        readme = readme_path.read_text()
        for name, report in reports.items():
            try:
                readme = replace_section(readme, name, report)
            except ValueError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                failures += 1
        readme_path.write_text(readme)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
