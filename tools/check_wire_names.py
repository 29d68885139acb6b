#!/usr/bin/env python3
"""Every wire name has one home: `shared/protocol`.

Fails (exit 1, naming file and line) when code outside the protocol crate
spells a stage name or formats a de-duplication id (`Nats-Msg-Id` value)
itself instead of calling `jetflow_protocol` (`Stage`, `names`, the
`*_msg_id` functions beside each message). Test modules and test files are
not checked: they may spell the contract out to hold the code to it.

A string that only looks like a stage name (a CSV column called "batch")
carries the comment `// not a stage` on its line.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKED = [
    "services/fetch/src",
    "services/batch/src",
    "services/migrate/src",
    "services/reduce/src",
    "services/cli/src",
    "shared/runtime/src",
    "shared/worker/src",
    "bench/src",
]
STAGE_LITERAL = re.compile(r'"(?:jetflow-)?(?:fetch|batch|migrate|reduce)"')
MSG_ID_SINK = re.compile(r"MSG_ID|Nats-Msg-Id|\.message_id\(|append_ledger\(|msg_id:|msg_id = ")
STATEMENT_LINES = 8


def code_lines(path):
    """The file's lines before its `#[cfg(test)]` module, as (number, text)."""
    lines = path.read_text().split("\n")
    out = []
    for number, line in enumerate(lines, 1):
        if line.strip() == "#[cfg(test)]":
            break
        out.append((number, line))
    return out


def check(path):
    problems = []
    lines = code_lines(path)
    for i, (number, line) in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith("//"):
            continue
        if STAGE_LITERAL.search(line) and "// not a stage" not in line:
            problems.append(f"{number}: a stage name spelt out; use jetflow_protocol::Stage")
        if MSG_ID_SINK.search(line):
            # The statement this line is part of: up to its end.
            statement = []
            for _, following in lines[i : i + STATEMENT_LINES]:
                statement.append(following)
                if following.rstrip().endswith(";"):
                    break
            if "format!(" in "\n".join(statement):
                problems.append(
                    f"{number}: a de-duplication id formatted here; "
                    "use the *_msg_id function beside the message in jetflow_protocol"
                )
    return problems


def main():
    failed = False
    for folder in CHECKED:
        for path in sorted((ROOT / folder).rglob("*.rs")):
            if "tests" in path.relative_to(ROOT / folder).parts:
                continue
            for problem in check(path):
                print(f"{path.relative_to(ROOT)}:{problem}")
                failed = True
    if failed:
        print("wire names belong in shared/protocol (tools/check_wire_names.py)")
        return 1
    print("wire names: every stage name and de-duplication id comes from jetflow-protocol")
    return 0


if __name__ == "__main__":
    sys.exit(main())
