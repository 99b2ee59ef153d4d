#!/usr/bin/env python3
"""Function definitions found by `icd functions` against those Universal Ctags lists.

    scripts/ctags_crosscheck.py TREE [--icd PATH] [--json]

Runs Universal Ctags (`ctags-universal`, else `ctags`; Debian's `universal-ctags`) over
TREE for C and C++ function definitions (kind `f`), and `icd functions TREE --format
jsonl` for the definitions this library finds. A ctags definition counts as found when
icd reports a definition in the same file whose lines hold ctags' line (definitions
never overlap, so that is the same one); where the names differ (a macro spelling the
header, which ctags names), both are listed. Prints the coverage (found / ctags), the ctags definitions
icd missed, and icd's definitions that ctags does not list ("extra": ctags skips
`#if 0` blocks and some K&R forms, so an extra is not by itself a false definition).
Exit status 0 when every ctags definition was found, 1 otherwise, 2 on error.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys


def ctags_definitions(tree):
    ctags = shutil.which("ctags-universal") or shutil.which("ctags")
    if ctags is None:
        sys.exit("ctags_crosscheck: Universal Ctags is not installed (apt-get install universal-ctags)")
    version = subprocess.run([ctags, "--version"], capture_output=True, text=True).stdout
    if "Universal Ctags" not in version:
        sys.exit(f"ctags_crosscheck: {ctags} is not Universal Ctags: {version.splitlines()[:1]}")
    out = subprocess.run(
        [ctags, "--output-format=json", "--fields=+ne", "--languages=C,C++",
         "--kinds-C=f", "--kinds-C++=f", "--langmap=C:.c.h", "-R", "-o", "-", tree],
        capture_output=True, text=True, check=True,
    ).stdout
    found = []
    for line in out.splitlines():
        tag = json.loads(line)
        if tag.get("_type") != "tag" or tag.get("kind") != "function":
            continue
        found.append({
            "file": os.path.normpath(tag["path"]),
            "name": tag["name"],
            "line": tag["line"],
            "end": tag.get("end"),
        })
    return found


def icd_definitions(tree, icd):
    out = subprocess.run([icd, "functions", tree, "--format", "jsonl"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ctags_crosscheck: {icd} functions failed ({out.returncode}): {out.stderr.strip()}")
    return [
        dict(row, file=os.path.normpath(row["file"]))
        for row in map(json.loads, out.stdout.splitlines())
        if "function" in row
    ]


def last_identifier(name):
    """`ns::Box<T>::put` -> `put`; `operator==` and `operator +=` -> `operator==`, `operator+=`."""
    name = re.sub(r"<[^<>]*>", "", name)
    name = name.rsplit("::", 1)[-1]
    return re.sub(r"\s+", "", name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree")
    parser.add_argument("--icd", default=os.environ.get("ICD", "icd"),
                        help="the icd binary (default: $ICD, else icd on PATH)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()

    tags = ctags_definitions(args.tree)
    ours = icd_definitions(args.tree, args.icd)
    # A definition's lines never overlap another's, so the one holding ctags' line is
    # the same definition; its name may differ where a macro spells the header
    # (`static ALLOC_FUNC(my_alloc)`: ctags names the macro).
    matched = set()
    missed = []
    renamed = []
    for tag in tags:
        hit = next(
            (i for i, d in enumerate(ours)
             if d["file"] == tag["file"]
             and d["start_line"] <= tag["line"] <= d["end_line"]
             and i not in matched),
            None,
        )
        if hit is None:
            missed.append(tag)
            continue
        matched.add(hit)
        if last_identifier(ours[hit]["function"]) != last_identifier(tag["name"]):
            renamed.append({"file": tag["file"], "line": tag["line"], "ctags": tag["name"],
                            "icd": ours[hit]["function"]})
    extra = [d for i, d in enumerate(ours) if i not in matched]
    report = {
        "ctags": len(tags),
        "found": len(tags) - len(missed),
        "icd": len(ours),
        "missed": missed,
        "named_differently": renamed,
        "extra": [{k: d[k] for k in ("file", "function", "start_line", "end_line")} for d in extra],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        share = 100.0 * report["found"] / report["ctags"] if tags else 100.0
        print(f"{report['found']} of {report['ctags']} ctags definitions found ({share:.2f}%); "
              f"icd reports {report['icd']}, {len(extra)} of them not listed by ctags")
        for tag in missed:
            print(f"missed: {tag['file']}:{tag['line']}: {tag['name']}")
        for r in renamed:
            print(f"named:  {r['file']}:{r['line']}: ctags {r['ctags']}, icd {r['icd']}")
        for d in report["extra"]:
            print(f"extra:  {d['file']}:{d['start_line']}-{d['end_line']}: {d['function']}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
