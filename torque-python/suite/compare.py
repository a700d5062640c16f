"""
Compare two runs of run_reactor.py: per module, how many of the tests that
pass on the reference reactor also pass on the one under test, and which do not.

    python compare.py epoll.json torque.json [--markdown OUT] [--min-ratio 0.95]

Exits 1 if the share is below --min-ratio.
"""

import argparse
import json
import re
import sys

REACTOR_CLASS = re.compile(r"_\w+?ReactorTests\.")


def normalise(test_id):
    # Builder tests are named after their reactor: ..._EPollReactorTests.test_x.
    return REACTOR_CLASS.sub("_ReactorTests.", test_id)


def module_of(test_id):
    parts = test_id.split(".")
    for i, part in enumerate(parts):
        if part.startswith("test_"):
            return ".".join(parts[: i + 1])
    return ".".join(parts[:-2])


def load(path):
    with open(path) as f:
        run = json.load(f)
    return run, {normalise(k): v for k, v in run["tests"].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference")
    parser.add_argument("candidate")
    parser.add_argument("--markdown", help="also write the table and the list here")
    parser.add_argument("--min-ratio", type=float, default=0.95)
    args = parser.parse_args()
    ref_run, ref = load(args.reference)
    cand_run, cand = load(args.candidate)
    ref_name, cand_name = ref_run["reactor"], cand_run["reactor"]

    modules = {}
    missing = []
    for test_id in sorted(set(ref) | set(cand)):
        row = modules.setdefault(module_of(test_id), {"run": 0, "ref": 0, "cand": 0, "both": 0})
        row["run"] += 1
        ref_pass = ref.get(test_id, ["absent"])[0] == "pass"
        cand_outcome = cand.get(test_id, ["absent", ""])
        row["ref"] += ref_pass
        row["cand"] += cand_outcome[0] == "pass"
        row["both"] += ref_pass and cand_outcome[0] == "pass"
        if ref_pass and cand_outcome[0] != "pass":
            missing.append((test_id, cand_outcome[0], _last_line(cand_outcome[1])))

    lines = [
        f"| module | tests | pass on {ref_name} | pass on {cand_name} | of {ref_name}'s passes, pass on {cand_name} |",
        "|---|---:|---:|---:|---:|",
    ]
    total = {"run": 0, "ref": 0, "cand": 0, "both": 0}
    for name, row in sorted(modules.items()):
        for key in total:
            total[key] += row[key]
        lines.append(f"| {name} | {row['run']} | {row['ref']} | {row['cand']} | {_share(row)} |")
    lines.append(f"| **total** | {total['run']} | {total['ref']} | {total['cand']} | **{_share(total)}** |")
    lines.append("")
    lines.append(f"Seconds: {ref_name} {ref_run['seconds']:.1f}, {cand_name} {cand_run['seconds']:.1f}.")
    if missing:
        lines.append("")
        lines.append(f"Passing on {ref_name}, not on {cand_name}:")
        lines.append("")
        for test_id, outcome, why in missing:
            lines.append(f"- `{test_id}`: {outcome}: {why}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    ratio = total["both"] / total["ref"] if total["ref"] else 1.0
    if ratio < args.min_ratio:
        print(f"\n{cand_name} passes {ratio:.1%} of {ref_name}'s passing tests, below {args.min_ratio:.0%}", file=sys.stderr)
        sys.exit(1)


def _share(row):
    return f"{row['both'] / row['ref']:.1%}" if row["ref"] else "—"


def _last_line(text):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


if __name__ == "__main__":
    main()
