#!/usr/bin/env python3
"""The HTML report at scale: `icd scan --format html` of a tree of N functions (the
nginx corpus, cycled), every function listed (threshold 0) with its source shaded
(`--explain`): the page's size, and in headless Chromium the time to load it, to sort
its list and to filter it.

    cargo build --features ndarray,wgpu --all-targets
    python3 benches/html_report.py --corpus ../shared/c-corpus/nginx.jsonl \\
        --functions 10000 --update BENCHMARKS.md

The checkpoint is the test fixture (tests/fixtures/roberta-2-labels): what is measured
is the page, not the model. Needs Debian's chromium and chromium-driver and Python's
selenium (./scripts/test installs them). `--update FILE` replaces this script's section in FILE.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## The HTML report at scale"


def browse(report):
    """(load ms, sort ms, filter ms, rows) in headless Chromium."""
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("ICD_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(os.environ.get("ICD_CHROMEDRIVER", "/usr/bin/chromedriver")),
                              options=options)
    try:
        driver.set_page_load_timeout(600)
        driver.get(report.as_uri())
        load = driver.execute_script(
            "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;")
        rows = driver.execute_script("return document.querySelectorAll('#list tbody tr').length;")
        sort = driver.execute_script(
            "const b = document.querySelector('#list th[data-key=function] button');"
            "const t = performance.now(); b.click(); return performance.now() - t;")
        filter_ms = driver.execute_script(
            "const f = document.getElementById('filter'); f.value = 'f0999';"
            "const t = performance.now(); f.dispatchEvent(new Event('input')); return performance.now() - t;")
        shown = driver.execute_script("return document.getElementById('shown').textContent;")
    finally:
        driver.quit()
    return load, sort, filter_ms, rows, shown


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="jsonl with a `func` field a line (nginx.jsonl)")
    parser.add_argument("--icd", default=str(ROOT / "target" / "debug" / "icd"))
    parser.add_argument("--functions", type=int, default=10000)
    parser.add_argument("--update", help="write the section into this markdown file")
    args = parser.parse_args()

    corpus = [json.loads(line)["func"] for line in Path(args.corpus).read_text().splitlines() if line.strip()]
    model = ROOT / "tests" / "fixtures" / "roberta-2-labels"
    with tempfile.TemporaryDirectory() as work:
        tree = Path(work) / "tree"
        tree.mkdir()
        for i in range(args.functions):
            (tree / f"f{i:05}.c").write_text(corpus[i % len(corpus)] + "\n")
        env = dict(os.environ, ICD_CACHE_DIR=str(Path(work) / "cache"))
        report = Path(work) / "report.html"
        started = time.perf_counter()
        done = subprocess.run([args.icd, "--model", str(model), "scan", ".", "--format", "html", "--threshold",
                               "0", "--explain", "-o", str(report)], cwd=tree, env=env, capture_output=True)
        scan_s = time.perf_counter() - started
        if done.returncode not in (0, 1):
            sys.exit(f"icd failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        size = report.stat().st_size
        lines = sum(1 for _ in tree.glob("*.c") for _ in _.read_text().splitlines())
        load, sort, filter_ms, rows, shown = browse(report)

    cpu = cpu_model()
    chromium = subprocess.run([os.environ.get("ICD_CHROMIUM", "/usr/bin/chromium"), "--version"],
                              capture_output=True, text=True).stdout.strip()
    section = "\n".join([
        HEADING,
        "",
        f"`icd scan --format html --threshold 0 --explain` of {args.functions:,} files ({lines:,} source lines:",
        f"the nginx corpus cycled, an entry a file; {rows:,} functions found), so that every function is",
        f"listed with its shaded source; opened in headless {chromium} on this machine ({cpu},",
        f"{os.cpu_count()} logical CPUs):",
        "",
        "```sh",
        "cargo build --features ndarray,wgpu --all-targets",
        f"python3 benches/html_report.py --corpus ../shared/c-corpus/nginx.jsonl --functions {args.functions} --update BENCHMARKS.md",
        "```",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| functions listed | {rows:,} |",
        f"| page size | {size / 2**20:.1f} MiB |",
        f"| load (navigation start to load event end) | {load / 1000:.2f} s |",
        f"| sort the list by function | {sort:.0f} ms |",
        f"| filter by text ({shown}) | {filter_ms:.0f} ms |",
        "",
        f"The scan itself (fixture model, test build) took {scan_s:.1f} s. Articles are laid out as they",
        "scroll into view (`content-visibility: auto`), so the load does not pay for every source line.",
        "",
    ])
    print(section)
    if args.update:
        update_section(args.update, HEADING, section)

if __name__ == "__main__":
    main()
