"""List and merge the discovery catalogues of several runs.

    python scripts/catalogue.py RUN_DIR... [--chiral] [--sm-charged]
        [--sort first|count|reward|fields] [--markdown|--csv|--json] [--limit N]
        [--dark-sets [--zmax Z] | --fermions]

Each RUN_DIR's `discoveries.jsonl` is read (`discoveries.load_catalogue`); the
same physics model found by several runs is one row (`merge`). The default
output is an aligned table (id, run, first step, count, reward, class, added
fields); --markdown gives the same as a Markdown table, --csv one row per model
with the class flags as columns, --json the merged entries. Bad input (not a
run directory, no catalogue, an unreadable file) is one line
`error: <path>: ...` and exit status 2.

--dark-sets lists charge sets instead of models: one row per primitive, anomaly-free,
chiral U(1)' charge set of added SM-singlet fermions (each entry's `dark_set`), with the
models that carry it (`group_entries`). A set, its multiples and its sign flip are one
U(1)' (the gauge coupling absorbs the normalisation), but the model key keeps the charges
as written, so one set can be several models; this view counts the physics once. With
--zmax Z it also prints the coverage of every such set with |z| <= Z of each size found
(`physics.u1_charges.coverage`). --fermions lists fermion contents: one row per gauge
group and set of added fermions, scalars ignored, with the models that carry it (a model
with one more scalar is another model, but the same matter).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from .cli import fail, user_errors
from .discoveries import reward_of, added_label, class_label, key_of_json, load_catalogue
from .physics.u1_charges import coverage

SORTS = ("first", "count", "reward", "fields")
COLUMNS = ("id", "run", "first step", "count", "reward", "class", "added fields")
GROUP_COLUMNS = ("first step", "first found", "models", "count", "best reward")
CSV_COLUMNS = ("run", "id", "first_step", "count", "best_run", "best_step", "total_reward",
               "class", "added_fields", "added_fermions", "adds_sm_charged", "vector_like",
               "chiral", "sm_generations", "added", "dark_charges", "dark_set", "hash", "runs")


def merge(catalogues: Iterable[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One entry per physics model over (run name, entries) pairs, by earliest first step.

    The entry where the model was found first (lowest first_step; ties: the run listed
    first, then the lower id) gives `run`, `id`, `first_step`, `key`, `added`, `class`
    and the dark charges; `count` is summed over runs; the best instance (highest
    total_reward; ties keep the earlier run and step) gives `best_run`, `best_step`,
    `scores`, `tokens`; `runs` lists {run, id, first_step, count} per run."""
    found: dict[tuple, list[tuple[int, str, dict[str, Any]]]] = {}
    for order, (run, entries) in enumerate(catalogues):
        for entry in entries:
            found.setdefault(key_of_json(entry["key"]), []).append((order, run, entry))
    merged = []
    for group in found.values():
        order, run, first = min(group, key=lambda g: (g[2]["first_step"], g[0], g[2]["id"]))
        best_order, best_run, best = max(
            group, key=lambda g: (reward_of(g[2]["scores"]), -g[0], -g[2]["best_step"]))
        merged.append({
            "run": run, "id": first["id"], "first_step": first["first_step"],
            "count": sum(g[2]["count"] for g in group),
            "best_run": best_run, "best_step": best["best_step"], "scores": best["scores"],
            "tokens": best["tokens"], "key": first["key"], "added": first["added"],
            "class": first["class"], "dark_charges": first["dark_charges"],
            "dark_set": first["dark_set"],
            "runs": [{"run": r, "id": e["id"], "first_step": e["first_step"], "count": e["count"]}
                     for _, r, e in sorted(group, key=lambda g: g[0])],
            "_order": (first["first_step"], order, first["id"]),
        })
    merged.sort(key=lambda e: e["_order"])
    for e in merged:
        del e["_order"]
    return merged


def sort_entries(entries: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Entries (as `merge` orders them: first found first) sorted by `by`: first, count
    (most first), reward (best first) or fields (fewest added fields first); stable."""
    if by not in SORTS:
        raise ValueError(f"--sort {by!r}: expected one of {', '.join(SORTS)}")
    key = {"first": lambda e: 0, "count": lambda e: -e["count"],
           "reward": lambda e: -reward_of(e["scores"]),
           "fields": lambda e: e["class"]["added_fields"]}[by]
    return sorted(entries, key=key)


def _reward_text(entry: dict[str, Any]) -> str:
    value = entry["scores"].get("total_reward")
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def group_entries(entries: list[dict[str, Any]],
                  key: Callable[[dict[str, Any]], Hashable | None]) -> list[dict[str, Any]]:
    """Entries (as `merge` gives them) grouped by key(entry), leaving out entries whose key is
    None, in the order of the entries: per group its `key`, the `first` entry, `models` (run#id
    of every entry in it), `count` (their instances summed) and the `best` entry (highest
    total_reward, ties the earlier)."""
    groups: dict[Hashable, dict[str, Any]] = {}
    for e in entries:
        k = key(e)
        if k is None:
            continue
        g = groups.setdefault(k, {"key": k, "first": e, "models": [], "count": 0, "best": e})
        g["models"].append(f"{e['run']}#{e['id']}")
        g["count"] += e["count"]
        if reward_of(e["scores"]) > reward_of(g["best"]["scores"]):
            g["best"] = e
    return list(groups.values())


def dark_set_of(entry: dict[str, Any]) -> tuple[int, ...] | None:
    """The entry's primitive chiral anomaly-free U(1)' charge set (`dark_set`), or None."""
    return tuple(entry["dark_set"]) if entry["dark_set"] else None


def fermions_of(entry: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The entry's gauge group and the labels of the fermions it adds (scalars dropped)."""
    return (tuple(entry["key"]["gauge"]),
            tuple(label for label in entry["added"] if not label.startswith("S")))


def sort_groups(groups: list[dict[str, Any]], by: str,
                size: Callable[[Hashable], int]) -> list[dict[str, Any]]:
    """Groups sorted like `sort_entries`: first, count (most instances first), reward (best
    model first) or fields (fewest first, as size(group key) counts them: the view's
    `GroupView.size`); stable."""
    key = {"first": lambda g: 0, "count": lambda g: -g["count"],
           "reward": lambda g: -reward_of(g["best"]["scores"]),
           "fields": lambda g: size(g["key"])}[by]
    return sorted(groups, key=key)


def _group_cells(group: dict[str, Any]) -> list[str]:
    first = group["first"]
    return [str(first["first_step"]), f"{first['run']}#{first['id']}", str(len(group["models"])),
            str(group["count"]), _reward_text(group["best"])]


def _fermion_class(entry: dict[str, Any]) -> str:
    cls = entry["class"]
    return ("chiral" if cls["chiral"] else "vector-like" if cls["vector_like"]
            else "no new fermions" if cls["added_fermions"] == 0 else "SM generations")


def dark_summary(groups: list[dict[str, Any]], zmax: int | None) -> str:
    """The footer of the charge-set view: sets by size, and with zmax their coverage."""
    sizes = sorted({len(g["key"]) for g in groups})
    by_size = ", ".join(f"n = {n}: {sum(len(g['key']) == n for g in groups)}" for n in sizes)
    models = sum(len(g["models"]) for g in groups)
    text = (f"{len(groups)} chiral anomaly-free charge set(s)" + (f" ({by_size})" if sizes else "")
            + f" in {models} model(s)")
    if zmax is not None and sizes:
        cover = coverage([g["key"] for g in groups], sizes, zmax)
        text += f"\ncoverage of the sets with |z| <= {zmax}: " + ", ".join(
            f"n = {n}: {c['found']} of {c['total']}" for n, c in cover.items())
    return text


def fermion_summary(groups: list[dict[str, Any]]) -> str:
    """The footer of the fermion-content view: contents by class."""
    classes = Counter(_fermion_class(g["first"]) for g in groups)
    models = sum(len(g["models"]) for g in groups)
    return (f"{len(groups)} fermion content(s) ("
            + ", ".join(f"{c}: {n}" for c, n in sorted(classes.items())) + f") in {models} model(s)")


@dataclasses.dataclass(frozen=True)
class GroupView:
    """A listing of groups of models: what groups them, its columns and its footer."""
    key: Callable[[dict[str, Any]], Hashable | None]
    size: Callable[[Hashable], int]                   # fields in a group's key (--sort fields)
    columns: tuple[str, ...]
    cells: Callable[[dict[str, Any]], list[str]]      # the group's leading columns
    json_fields: Callable[[dict[str, Any]], dict[str, Any]]


DARK_SETS = GroupView(
    key=dark_set_of,
    size=len,                                         # charges
    columns=("charge set", "n") + GROUP_COLUMNS,
    cells=lambda g: ["(" + ", ".join(map(str, g["key"])) + ")", str(len(g["key"]))],
    json_fields=lambda g: {"charges": list(g["key"]), "n": len(g["key"])})
FERMION_CONTENTS = GroupView(
    key=fermions_of,
    size=lambda key: len(key[1]),                     # added fermions (key: gauge, fermions)
    columns=("added fermions", "class") + GROUP_COLUMNS,
    cells=lambda g: [" + ".join(g["key"][1]) or "(none)", _fermion_class(g["first"])],
    json_fields=lambda g: {"gauge": list(g["key"][0]), "fermions": list(g["key"][1]),
                           "class": _fermion_class(g["first"])})


def _row(entry: dict[str, Any]) -> list[str]:
    return [f"{entry['id']:05d}", entry["run"], str(entry["first_step"]), str(entry["count"]),
            _reward_text(entry), class_label(entry), added_label(entry)]


def format_table(entries: list[dict[str, Any]]) -> str:
    """Aligned columns; the last (added fields) is not padded."""
    rows = [list(COLUMNS)] + [_row(e) for e in entries]
    widths = [max(len(r[k]) for r in rows) for k in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]) for r in rows)


def format_markdown(entries: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for e in entries:
        row = _row(e)
        row[-1] = " + ".join(f"`{label}`" for label in e["added"]) or "(nothing added)"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_csv(entries: list[dict[str, Any]], out) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    space = lambda xs: "" if xs is None else " ".join(map(str, xs))   # noqa: E731
    for e in entries:
        cls = e["class"]
        writer.writerow([e["run"], e["id"], e["first_step"], e["count"], e["best_run"], e["best_step"],
                         e["scores"].get("total_reward", ""), class_label(e), cls["added_fields"],
                         cls["added_fermions"], cls["adds_sm_charged"], cls["vector_like"],
                         cls["chiral"], cls["sm_generations"], " + ".join(e["added"]),
                         space(e["dark_charges"]), space(e["dark_set"]), e["key"]["hash"],
                         " ".join(f"{r['run']}#{r['id']}" for r in e["runs"])])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="catalogue.py", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to list and merge")
    p.add_argument("--chiral", action="store_true", help="only models whose added fermions are chiral")
    p.add_argument("--sm-charged", action="store_true", help="only models adding SM-charged fields")
    p.add_argument("--sort", choices=SORTS, default="first",
                   help="first found (default), count, reward (best first), fields (fewest first)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="a Markdown table")
    form.add_argument("--csv", action="store_true", help="CSV, one row per model")
    form.add_argument("--json", action="store_true", help="the merged entries as one JSON list")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N models (sets)")
    p.add_argument("--dark-sets", action="store_true",
                   help="one row per chiral anomaly-free U(1)' charge set instead of per model")
    p.add_argument("--fermions", action="store_true",
                   help="one row per added fermion content (scalars ignored) instead of per model")
    p.add_argument("--zmax", type=int, metavar="Z",
                   help="with --dark-sets: also the coverage of all such sets with |z| <= Z")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with user_errors():
        if args.limit is not None and args.limit < 1:
            fail(f"--limit {args.limit}: expected a positive number")
        seen: dict[Path, str] = {}
        catalogues = []
        for raw in args.run_dirs:
            run = os.path.normpath(raw)
            resolved = Path(run).resolve()
            if resolved in seen:
                fail(f"{raw}: given twice (also as {seen[resolved]})")
            seen[resolved] = raw
            catalogues.append((run, load_catalogue(run)))
        entries = merge(catalogues)
        total = len(entries)
        if args.chiral:
            entries = [e for e in entries if e["class"]["chiral"]]
        if args.sm_charged:
            entries = [e for e in entries if e["class"]["adds_sm_charged"]]
        if args.zmax is not None and (not args.dark_sets or args.zmax < 1):
            fail(f"--zmax {args.zmax}: expected a positive number, with --dark-sets")
        if args.dark_sets and args.fermions:
            fail("--dark-sets and --fermions: choose one grouping")
        if args.dark_sets or args.fermions:
            return _print_groups(args, entries)
        entries = sort_entries(entries, args.sort)[:args.limit]
        if args.json:
            print(json.dumps(entries, indent=1))
        elif args.csv:
            write_csv(entries, sys.stdout)
        elif args.markdown:
            print(format_markdown(entries))
        else:
            print(format_table(entries))
            print(f"{len(entries)} of {total} models from {len(catalogues)} run(s)")
    return 0


def _print_groups(args: argparse.Namespace, entries: list[dict[str, Any]]) -> int:
    view = DARK_SETS if args.dark_sets else FERMION_CONTENTS
    groups = group_entries(entries, view.key)
    shown = sort_groups(groups, args.sort, view.size)[:args.limit]
    if args.json:
        print(json.dumps([view.json_fields(g) | {
            "first_step": g["first"]["first_step"], "run": g["first"]["run"],
            "id": g["first"]["id"], "models": g["models"], "count": g["count"],
            "best": f"{g['best']['run']}#{g['best']['id']}"} for g in shown], indent=1))
        return 0
    rows = [view.cells(g) + _group_cells(g) for g in shown]
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(view.columns + ("models_list",))
        writer.writerows(r + [" ".join(g["models"])] for r, g in zip(rows, shown))
        return 0
    if args.markdown:   # a table alone, as the model view's
        print("\n".join(["| " + " | ".join(view.columns) + " |", "|" + "---|" * len(view.columns)]
                        + ["| " + " | ".join(r) + " |" for r in rows]))
        return 0
    # aligned, the first column last so that long contents do not push the others
    table = [list(view.columns[1:]) + [view.columns[0]]] + [r[1:] + r[:1] for r in rows]
    widths = [max(len(r[k]) for r in table) for k in range(len(view.columns) - 1)]
    print("\n".join("  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]) for r in table))
    print(dark_summary(groups, args.zmax) if args.dark_sets else fermion_summary(groups))
    return 0


__all__ = ["merge", "sort_entries", "group_entries", "dark_set_of", "fermions_of", "sort_groups",
           "dark_summary", "fermion_summary", "DARK_SETS", "FERMION_CONTENTS",
           "format_table", "format_markdown", "write_csv", "main"]
