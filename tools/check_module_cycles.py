#!/usr/bin/env python3
"""No import circles between the modules of a crate.

For every crate of the workspace, builds the graph "module A uses module B"
from `use crate::…`, `use super::…` and `crate::…` paths in each source
file (test modules left out), and fails naming the circle when there is one.
A path through a folder's `mod.rs` re-export (`pub use child::Name`) counts
as using the child that defines the name, so re-exports make no circles of
their own.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z_0-9]*)+|::\{)")


def crates():
    for manifest in sorted(ROOT.glob("**/Cargo.toml")):
        if any(part in ("target", "node_modules", ".tools") for part in manifest.parts):
            continue
        src = manifest.parent / "src"
        if src.is_dir():
            yield manifest.parent.relative_to(ROOT), src


def module_of(src, path):
    """`a/b.rs` -> ("a", "b"); `a/mod.rs` -> ("a",); lib.rs/main.rs -> ()."""
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return ()
    return tuple(parts)


def code(path):
    """The file without its test module and without comments (a doc link
    is not a use)."""
    text = path.read_text()
    cut = text.find("#[cfg(test)]")
    text = text if cut < 0 else text[:cut]
    return re.sub(r"//[^\n]*", "", text)


def uses(text):
    """Every path after `crate::`/`super::`, with braces expanded one level."""
    out = []
    for statement in re.findall(r"\buse\s+([^;]+);", text):
        out.extend(expand(statement.replace("\n", " ")))
    for match in PATH.finditer(re.sub(r"\buse\s+[^;]+;", "", text)):
        out.append(match.group(1) + match.group(2))
    return [p.replace(" ", "") for p in out if p.startswith(("crate", "super"))]


def expand(tree):
    tree = tree.strip()
    if "{" not in tree:
        return [tree.split(" as ")[0]]
    head, _, rest = tree.partition("{")
    inner = rest.rsplit("}", 1)[0]
    items, depth, cur = [], 0, ""
    for ch in inner:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for item in filter(None, (i.strip() for i in items)):
        out.extend(expand(head + item))
    return out


def resolve(segments, modules, reexports):
    """The deepest module a path names (following mod.rs re-exports)."""
    segments = [s for s in segments if s != "self"]
    best = ()
    for n in range(1, len(segments) + 1):
        if tuple(segments[:n]) in modules:
            best = tuple(segments[:n])
    rest = segments[len(best):]
    if rest and (best, rest[0]) in reexports:
        return resolve(list(reexports[(best, rest[0])]) + rest[1:], modules, reexports)
    return best


def graph(src):
    files = {module_of(src, p): p for p in src.rglob("*.rs")}
    modules = set(files)
    reexports = {}
    for module, path in files.items():
        for statement in re.findall(r"\bpub\s+use\s+([^;]+);", code(path)):
            for p in expand(statement.replace("\n", " ")):
                parts = p.replace(" ", "").split("::")
                if parts[0] in ("crate", "super", "self"):
                    base = () if parts[0] == "crate" else module[:-1] if parts[0] == "super" else module
                    parts = list(base) + parts[1:]
                elif tuple(list(module) + parts[:1]) in modules:
                    parts = list(module) + parts
                else:
                    continue
                reexports[(module, parts[-1])] = tuple(parts)
    edges = {m: set() for m in modules}
    for module, path in files.items():
        for p in uses(code(path)):
            parts = p.split("::")
            if parts[0] == "crate":
                segments = parts[1:]
            else:
                base = list(module)
                while parts and parts[0] == "super":
                    base = base[:-1]
                    parts = parts[1:]
                segments = base + parts
            target = resolve(segments, modules, reexports)
            # A module's own children and its ancestors (lib.rs, mod.rs) are
            # structure, not use.
            if target and target != module and target[: len(module)] != module and module[: len(target)] != target:
                edges[module].add(target)
    return edges


def circle(edges):
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main():
    failed = False
    for crate, src in crates():
        found = circle(graph(src))
        if found:
            failed = True
            print(f"{crate}: import circle: " + " -> ".join("::".join(m) for m in found))
    if failed:
        return 1
    print("modules: no import circles in any crate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
