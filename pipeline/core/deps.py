"""Make's view of the pipeline, derived from the registry: the rules and the config stamps.

    python -m pipeline.core.deps build/deps.mk                # the Makefile runs this before it reads the rules
    python -m pipeline.core.deps build/deps.mk --dry-run      # for `make -n`: stamps into a scratch copy

Writes, each only when its content changes, so that Make sees a change as a newer file and
nothing else as one (what DVC does with ``params:``):
- ``<artifacts>/.stamps/<section>.json``: one per config section (``config.sections``, with the
  ``SET`` overrides applied), and ``<artifacts>/.stamps/<artifact>.json``: one per registry entry,
  its recipe and parameters. A dry run writes them to ``.stamps-dry-run/`` (a copy, mtimes kept),
  so previewing a change does not make the next real run see one;
- the rules file: one rule per stage command. A stage that writes registry artifacts has one
  rule per artifact (``python -m pipeline.<stage> NAME``), whose prerequisites add its parent and
  its entry's stamp; any other stage one rule for its primary output (the one written last; the
  others are written before it). Every rule's prerequisites are the stage's module and every
  module of this repository it imports (read from their import statements, so a stage does not
  depend on code it never loads), the files it reads, and the stamps of the config sections it
  declares in ``artifacts.STAGES``.

A bad override or a registry entry that cannot work (``artifacts.check``) stops here, before any
stage runs: one line on stderr, exit status 1.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pipeline import artifacts, config

ROOT = config.REPO_ROOT
PACKAGES = ("pipeline", "runtime")
# Read through stamps instead: an edit to a default reruns the stages of that section only, and a
# new registry entry reruns only what is built from it.
STAMPED = {"pipeline/config.py", "pipeline/artifacts.py"}
STAMPS = "$(STAMPS)"  # the Makefile's: <artifacts>/.stamps, or the dry run's copy
# Files that modules read beside them, which an import does not show: a stage that imports the module reruns when
# one of them changes too.
READS = {
    "runtime/constants.py": ("runtime/preprocess.json",),
    "runtime/native/__init__.py": ("runtime/native/ink.c",),
}


def _module_file(name: str) -> str | None:
    parts = name.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


def _nodes(tree: ast.Module, package_init: bool) -> list[ast.AST]:
    """The statements whose imports run when the module is used: all of them, but not those under
    ``if TYPE_CHECKING:``, nor, in a package's ``__init__``, those inside functions (lazy accessors)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if package_init and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _imports(path: str) -> set[str]:
    """The repository modules ``path`` imports, at the top or inside functions."""
    found = set()
    for node in _nodes(ast.parse((ROOT / path).read_text(), path), path.endswith("__init__.py")):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                parts = name.split(".")
                found.update(f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i]))))
    return found


def modules(stage: str) -> list[str]:
    """``pipeline/<stage>.py`` and every repository module it imports, directly or not."""
    todo, seen = [f"pipeline/{stage}.py"], set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_imports(path) - seen)
    return sorted((seen - STAMPED) | {f for module in seen for f in READS.get(module, ())})


def _rule(target: str, prereqs: list[str], command: str, after: tuple[str, ...] = ()) -> str:
    # One target per command: GNU Make 4.3 does not propagate grouped targets (&:) in a dry run.
    lines = [f"{target}: \\"] + [f"\t\t{p} \\" for p in prereqs]
    order_only = " ".join(["$(INSTALLED)", *(f"$(A)/{name}" for name in after)])
    return "\n".join(lines) + f"\n\t\t| {order_only}\n\t" + command + "\n"


def rules() -> str:
    """The Make rules of every stage (they use the Makefile's $(A), $(PY) and $(INSTALLED))."""
    out = ["# Generated by `python -m pipeline.core.deps` from pipeline/artifacts.py: do not edit.\n"]
    for stage in artifacts.STAGES:
        own = artifacts.of_stage(stage.name)
        common = modules(stage.name) + [f"{STAMPS}/{s}.json" for s in stage.reads]
        for name in stage.inputs:
            if name in artifacts.SELECTORS:
                common += [f"$(A)/{a.name}" for a in artifacts.select(name)]
            elif "*" in name:  # repository files the stage packs, not imports
                common += sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(name) if p.is_file())
            else:
                common.append(f"$(A)/{name}")
        command = f"$(PY) -m pipeline.{stage.name}"
        if own:
            for a in own:
                parent = [f"$(A)/{a.parent}"] if a.parent else []
                out.append(
                    _rule(f"$(A)/{a.name}", common + parent + [f"{STAMPS}/{a.name}.json"], f"{command} {a.name}")
                )
            targets = [a.name for a in own]
        else:
            targets = [artifacts.primary(stage)]
            out.append(_rule(f"$(A)/{targets[0]}", common, command, stage.after))
        out.append(f"{stage.name.upper()}_OUTPUTS := {' '.join(f'$(A)/{t}' for t in targets)}\n")
    return "\n".join(out)


SWEEP_READS = ("seed", "data", "train", "prune", "export", "distill", "cluster", "firmware", "sweep")


def sweep_rules(cfg: config.Config) -> str:
    """One rule per point of the sweep grid (config `sweep`): `make -j sweep` fans them out; a clustered
    point waits for the k = 0 point whose model it clusters."""
    common = [*modules("sweep"), *(f"{STAMPS}/{s}.json" for s in SWEEP_READS), f"$(A)/{artifacts.DATA}"]
    common.append(f"$(A)/{artifacts.BASELINE}")
    points = cfg.sweep.points()
    out = []
    for n in points:
        start = cfg.sweep.unclustered(n)
        parent = [f"$(A)/sweep/{start}.json"] if n != start and start in points else []
        out.append(_rule(f"$(A)/sweep/{n}.json", common + parent, f"$(PY) -m pipeline.sweep {n}"))
    out.append(f"SWEEP_POINTS := {' '.join(f'$(A)/sweep/{n}.json' for n in cfg.sweep.points())}\n")
    return "\n".join(out)


def write_if_changed(path: Path, text: str) -> None:
    """Write atomically, and not at all when ``path`` already holds ``text`` (its mtime is what Make reads)."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def stamp(cfg: config.Config, dry_run: bool = False) -> None:
    folder = cfg.artifacts / ".stamps"
    if dry_run:
        scratch = cfg.artifacts / ".stamps-dry-run"
        shutil.rmtree(scratch, ignore_errors=True)
        if folder.is_dir():
            shutil.copytree(folder, scratch)  # copy2: the mtimes Make compares come along
        folder = scratch
    for name, values in config.sections(cfg).items():
        write_if_changed(folder / f"{name}.json", json.dumps(values, indent=1, sort_keys=True) + "\n")
    for a in artifacts.ARTIFACTS:
        write_if_changed(folder / f"{a.name}.json", json.dumps(a.describe(), indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    dry_run = "--dry-run" in argv
    files = [a for a in argv if a != "--dry-run"]
    if len(files) != 1:
        raise SystemExit("usage: python -m pipeline.core.deps RULES_FILE [--dry-run]")
    try:
        cfg = config.load()
        artifacts.check(cfg)
    except (config.ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    stamp(cfg, dry_run)
    write_if_changed(Path(files[0]), rules() + "\n" + sweep_rules(cfg))


if __name__ == "__main__":
    main()
