"""Score `.theory` files (spec §5).

    theorygrpo-score FILE... [--json] [--preset default|lhc] [--config CONFIG | --run RUN]

With ``--config`` (a YAML file, a packaged config's name, or a run directory: its
config.yaml) or ``--run RUN`` the files are scored with that config's reward
section -- weights, thresholds, max_len and reward.extra hooks -- so the totals
are the ones training gave (a discovery's ``# scores:`` header); without either,
the default reward (``--preset``).

(also ``python -m theorygrpo_jax.score`` and ``python scripts/score.py``).

Every file is parsed with `grammar.text.load_theory`; a file the grammar
rejects gives ``accepted: false`` and the one-line error (file, line, token,
what was allowed), the other files are still scored, and the exit status is 1.
Accepted files are scored together in ONE call of the jitted JAX reward
(`reward.analyse_batch`); the per-field detail (components, charges, masses)
comes from the same JAX spectrum, and every number is cross-checked against
the plain-Python reference (`physics.reference`) -- a disagreement is a bug
and is reported on stderr and as ``"reference_agrees": false``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from fractions import Fraction
from typing import Any

import numpy as np

from theorygrpo_jax.cli import fail, user_errors
from theorygrpo_jax.grammar import text
from theorygrpo_jax.physics import anomalies as anom
from theorygrpo_jax.physics import reference as ref
from theorygrpo_jax.physics import spectrum as spec
from theorygrpo_jax.physics.record import tokens_to_ids
from theorygrpo_jax.reward import RewardConfig, analyse_batch

REWARD_KEYS = ("anomalies_reward", "light_exotics_reward", "invalid_terms_reward", "length_reward",
               "heavy_exotics_reward", "total_reward")


def _rejected(path: str, error: str) -> dict[str, Any]:
    return {"file": path, "accepted": False, "error": error, "anomalies": None, "anomaly_free": None,
            "anomaly_l1": None, "invalid_terms": None, "light_exotics": None, "success": False,
            "rewards": None}


def _bucket(n: int) -> int:
    """Pad lengths to multiples of 64 so that a few shapes cover every file (few compiles)."""
    return max(64, -(-n // 64) * 64)


SCORE_BATCH = 64   # theories per JAX call (padded to it: one compile per length bucket)


def score_token_lists(theories: list[list[str]], config: RewardConfig) -> list[dict[str, Any]]:
    """Spec §5 dicts (without "file") of grammar-valid token lists, scored SCORE_BATCH at a
    time (memory constant in the number of theories)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(theories), SCORE_BATCH):
        results += _score_chunk(theories[start:start + SCORE_BATCH], config)
    return results


def _score_chunk(theories: list[list[str]], config: RewardConfig) -> list[dict[str, Any]]:
    if not theories:
        return []
    padded = theories + [theories[0]] * (SCORE_BATCH - len(theories))
    ids = tokens_to_ids(padded, _bucket(max(len(t) for t in theories)))
    out = analyse_batch(ids, config)
    host = {k: np.asarray(v) for k, v in out.items() if k not in ("spectrum", "record")}
    sp = {k: np.asarray(v) for k, v in vars(out["spectrum"]).items()}
    extra_names = [name for name, _, _ in config.extra]
    results = []
    for b, toks in enumerate(theories):
        gauge = toks[toks.index("GAUGE") + 1: toks.index("END_GAUGE")]
        coeffs = host["anomaly_coeffs"][b][host["anomaly_valid"][b]]
        anomalies = {n: int(c) for n, c in zip(anom.condition_names(gauge), coeffs)}
        rewards = {k: float(host[k][b]) for k in REWARD_KEYS + tuple(extra_names)}
        weights = config.weights()
        res: dict[str, Any] = {
            "accepted": True, "error": None, "gauge": gauge,
            "anomalies": anomalies,
            "anomaly_free": bool(host["anomaly_l1"][b] == 0),
            "anomaly_l1": int(host["anomaly_l1"][b]),
            "invalid_terms": int(host["invalid_terms"][b]),
            "light_exotics": int(host["light_exotics"][b]),
            "heavy_exotic_fields": int(host["heavy_exotic_fields"][b]),
            "success": bool(host["success"][b]),
            "length": int(host["length"][b]),
            "rewards": rewards,
            "weights": weights,   # each component's weight in total_reward (0: not in it)
        }
        report = ref.score_report(toks, config)
        for f, fd in enumerate(report["fields"]):       # JAX masses into the reference's detail
            for c, comp in enumerate(fd["components"]):
                comp["masses_gev"] = [float(spec.CODE_GEV[sp["mass_code"][b, f, c, g]])
                                      for g in range(fd["generations"])]
        res["terms"] = report["terms"]
        res["fields"] = report["fields"]
        res["reference_agrees"] = _agrees(res, report, with_total=not config.extra)
        if not res["reference_agrees"]:
            print(f"warning: JAX and reference scores differ for theory {b}: please report", file=sys.stderr)
        results.append(res)
    return results


def _agrees(res: dict[str, Any], report: dict[str, Any], with_total: bool = True) -> bool:
    """JAX result == reference report (the reference knows no `extra` components: then the
    total is not compared)."""
    same = all(res[k] == report[k] for k in ("anomalies", "anomaly_l1", "invalid_terms", "light_exotics",
                                             "heavy_exotic_fields", "success", "length"))
    keys = [k for k in REWARD_KEYS if with_total or k != "total_reward"]
    return same and all(math.isclose(res["rewards"][k], report["rewards"][k], rel_tol=1e-5, abs_tol=1e-5)
                        for k in keys)


def score_files(paths: list[str], config: RewardConfig) -> list[dict[str, Any]]:
    """One spec §5 dict per file, in order (rejected files: accepted false + error)."""
    results: list[dict[str, Any] | None] = []
    good: list[tuple[int, list[str]]] = []
    for i, path in enumerate(paths):
        try:
            good.append((i, text.load_theory(path)))
            results.append(None)
        except text.TheoryError as e:
            results.append(_rejected(path, str(e)))
    for (i, _), res in zip(good, score_token_lists([t for _, t in good], config)):
        results[i] = {"file": paths[i], **res}
    return results  # type: ignore[return-value]


def _mass(m: float) -> str:
    if m == 0:
        return "0"
    return f"{m:.3g}"


def format_table(res: dict[str, Any]) -> str:
    """Readable report of one file's result."""
    lines = [f"== {res['file']}"]
    if not res["accepted"]:
        return "\n".join(lines + [f"  REJECTED: {res['error']}"])
    verdict = "SUCCESS" if res["success"] else "no success"
    lines.append(f"  gauge {' '.join(res['gauge'])} | {res['length']} tokens | {verdict}: "
                 f"anomaly L1 {res['anomaly_l1']}, invalid terms {res['invalid_terms']}, "
                 f"light exotics {res['light_exotics']}, heavy exotic fields {res['heavy_exotic_fields']}")
    lines.append("  anomalies:")
    width = max(len(n) for n in res["anomalies"])
    for name, c in res["anomalies"].items():
        lines.append(f"    {name:<{width}}  {c:>6d}" + ("" if c == 0 else "   <- anomalous"))
    lines.append("  fields (one row per T3 component; masses per generation in GeV; "
                 "* = light charged exotic):")
    for fd in res["fields"]:
        head = (f"{fd['kind']} {fd['chirality']} x{fd['generations']}" if fd["kind"] == "FERMION"
                else f"SCALAR {'VEV' if fd['vev'] else 'NOVEV'}")
        tag = "exotic" if fd["exotic"] else "SM"
        if fd["coloured"]:
            tag += ",col"
        if fd["breaks_em_or_colour"]:
            tag += ",BREAKS-EM/COLOUR"
        for c, comp in enumerate(fd["components"]):
            t3 = str(Fraction(comp["t3x2"], 2))
            masses = ", ".join(_mass(m) for m in comp["masses_gev"])
            light = fd["exotic"] and comp["charged"] and any(
                m < _threshold(res, fd["coloured"]) for m in comp["masses_gev"])
            left = (f"    {fd['name']:<5} {head:<16} {' '.join(fd['slots']):<16} {tag:<14}" if c == 0
                    else " " * 58)
            lines.append(f"{left} T3={t3:>4}  Q={comp['Q']:>5}  m=[{masses}]" + (" *" if light else ""))
    bad = [t for t in res["terms"] if not t["invariant"]]
    if bad:
        lines.append("  non-invariant terms: " + "; ".join(f"{t['kind']} {' '.join(t['refs'])}" for t in bad))
    lines.extend(_reward_lines(res["rewards"], res.get("weights", {})))
    return "\n".join(lines)


def _reward_lines(rewards: dict[str, float], weights: dict[str, float]) -> list[str]:
    """The rewards as `weight x value` rows summing to total_reward; a component whose weight
    is 0 is shown but marked as not in the total."""
    width = max(len(k) for k in rewards)
    lines = ["  rewards (total_reward = sum of weight x value):"]
    for name, value in rewards.items():
        if name == "total_reward":
            continue
        weight = weights.get(name)
        mark = "   (weight 0: not in the total)" if weight == 0 else ""
        shown = f"{weight:>8.4g} x" if weight is not None else " " * 10
        lines.append(f"    {name:<{width}}  {shown} {value:>10.4f}{mark}")
    lines.append(f"    {'total_reward':<{width}}  {' ' * 10} {rewards['total_reward']:>10.4f}")
    return lines


def _threshold(res: dict[str, Any], coloured: bool) -> float:
    return res["_thresholds"][1 if coloured else 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="theorygrpo-score", description="Score TheoryLang .theory files (spec §5).")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    parser.add_argument("--preset", choices=["default", "lhc"],
                        help="reward preset: default (100/100 GeV) or lhc (800 GeV uncoloured, 1400 "
                             "coloured); default: default, or the reward of --config / --run")
    parser.add_argument("--config", help="score with this config's reward: a YAML file, a packaged "
                                         "config's name, or a run directory (its config.yaml)")
    parser.add_argument("--run", help="score with the reward of this run directory's config.yaml "
                                      "(the scores its training gave)")
    args = parser.parse_args(argv)
    accepted = True
    with user_errors():   # a closed pipe (`| head`) ends quietly, an OS error in one line
        config = reward_config(args.config, args.run, args.preset)
        for start in range(0, len(args.files), SCORE_BATCH):   # memory constant in the files
            for res in score_files(args.files[start:start + SCORE_BATCH], config):
                accepted &= res["accepted"]
                if args.json:
                    print(json.dumps(res), flush=True)
                else:
                    res["_thresholds"] = (config.mass_threshold, config.coloured_mass_threshold)
                    print(format_table(res), flush=True)
    return 0 if accepted else 1


def reward_config(config: str | None = None, run: str | None = None,
                  preset: str | None = None) -> RewardConfig:
    """The reward of `--config` (a YAML file, a packaged config's name, a run directory) or
    `--run` (a run directory), else of `--preset` (default: "default"); one reward source only."""
    from pathlib import Path

    from theorygrpo_jax.config import load_config
    from theorygrpo_jax.resources import config_path

    given = [f"--{k}" for k, v in (("config", config), ("run", run), ("preset", preset)) if v]
    if len(given) > 1:
        fail(f"give one of {', '.join(given)}: each names the reward to score with")
    if run is not None:
        if not (Path(run) / "config.yaml").is_file():
            fail(f"{run}: not a run directory (no config.yaml)")
        config = str(Path(run) / "config.yaml")
    if config is not None:
        if Path(config).is_dir():
            if not (Path(config) / "config.yaml").is_file():
                fail(f"{config}: a directory without config.yaml (expected a config file or a "
                     f"run directory)")
            config = str(Path(config) / "config.yaml")
        return load_config(config_path(config)).reward
    return RewardConfig.preset(preset or "default")


__all__ = ["score_files", "score_token_lists", "format_table", "reward_config", "main"]


if __name__ == "__main__":
    sys.exit(main())
