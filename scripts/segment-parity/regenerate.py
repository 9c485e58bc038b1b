"""Rewrite tests/data/segment-parity/*.json by running Segment's own code over the corpus inputs.

    python scripts/segment-parity/regenerate.py /path/to/action-destinations

The checkout should be at the commit named in docs/mappings.md. This script installs the npm
packages listed in package.json beside it (versions pinned as in that checkout's yarn.lock) into
a scratch folder, runs evaluate.ts with Node (TZ=UTC, network calls answered by nock), and writes
one data file per kind of case. Nothing of Segment's is copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = REPO / "tests" / "data" / "segment-parity"
sys.path.insert(0, str(HERE))

from cases import all_cases  # noqa: E402


def _install(node_dir: Path) -> None:
    node_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "package.json", node_dir / "package.json")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=node_dir,
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", help="path of an action-destinations checkout")
    parser.add_argument(
        "--node-dir",
        default=str(Path(tempfile.gettempdir()) / "segment-parity-node"),
        help="where the npm packages are installed (kept between runs)",
    )
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git work tree")
    args = parser.parse_args()
    checkout = Path(args.checkout).resolve()
    if not (checkout / "packages" / "core" / "src" / "mapping-kit").is_dir():
        parser.error(f"{checkout} is not an action-destinations checkout")
    node_dir = Path(args.node_dir)
    if not (node_dir / "node_modules" / "tsx").is_dir():
        _install(node_dir)
    commit = (
        args.commit
        or subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    env = {
        **os.environ,
        "TZ": "UTC",
        "SEGMENT_CHECKOUT": str(checkout),
        "NODE_PATH": f"{HERE / 'shims'}{os.pathsep}{node_dir / 'node_modules'}",
    }
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for kind, cases in all_cases().items():
            inputs, outputs = Path(scratch) / f"{kind}.in.json", Path(scratch) / f"{kind}.json"
            inputs.write_text(json.dumps(cases, ensure_ascii=False))
            subprocess.run(
                [str(node_dir / "node_modules" / ".bin" / "tsx"), str(HERE / "evaluate.ts"),
                 str(inputs), str(outputs)],
                env=env,
                check=True,
            )  # fmt: skip
            results = json.loads(outputs.read_text())
            # Cases that run over many events share one list of them, written once.
            events = next((case["events"] for case in results if "events" in case), [])
            for case in results:
                if case.get("events") == events:
                    del case["events"]
            # One case per line, ASCII escapes (Segment's strings can hold half a surrogate pair).
            lines = [
                "{",
                f'"segment_commit": {json.dumps(commit or "unknown")},',
                f'"events": {json.dumps(events)},',
                '"cases": [',
                ",\n".join(json.dumps(case) for case in results),
                "]}",
            ]
            (DATA / f"{kind}.json").write_text("\n".join(lines) + "\n")
            print(f"{kind}: {len(results)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
