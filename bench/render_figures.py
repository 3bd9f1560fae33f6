"""Render the README's Figures tables from the benchmark JSON kept in bench/results/.

    python bench/render_figures.py           # print every table
    python bench/render_figures.py --write   # put them into README.md

README.md holds each table between ``<!-- figures:NAME -->`` and
``<!-- /figures:NAME -->``, NAME being the benchmark whose JSON
(``bench/results/NAME.json``) it is rendered from; tests/test_bench_figures.py
checks that the README says what the committed JSON says. Numbers are never
typed into the README by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
NONE = "–"


def _ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def _conditions(r: dict) -> str:
    """The line under a table: when, and how busy the machine was (timings move with it)."""
    when = f"measured {r['measured']}; " if "measured" in r else ""
    load = ""
    if "load_avg_start" in r and "load_avg_end" in r:
        load = (f"1-minute load average {r['load_avg_start'][0]:.1f} at the start, "
                f"{r['load_avg_end'][0]:.1f} at the end")
    quick = "; reduced run (--quick)" if r.get("quick") else ""
    return f"\n\n({when}{load}{quick}; JSON in bench/results/)"


def _jack_rows(jack: dict | None) -> list[str]:
    rows = []
    for cond, label in (("idle", "idle"), ("sampling", "while takes are sampled")):
        runs = [r for r in (jack or {}).get(cond, []) if r and "jitter_p99_ms" in r]
        if not runs:
            continue
        p50 = statistics.median(r["jitter_p50_ms"] for r in runs)
        p99 = [r["jitter_p99_ms"] for r in runs]
        rows.append(f"| JACK note-on jitter, 64-frame period at 48 kHz (dummy driver, not realtime), {label}, "
                    f"{len(runs)} runs: p50 / p99 range | {p50:.2f} / {min(p99):.2f}-{max(p99):.2f} ms "
                    f"| {NONE} | {NONE} |")
    return rows


def live_table(r: dict) -> str:
    """bench/live_bench.py: time to first note against the Transformer peer."""
    ttfn, eager, peer = r["ttfn_ms"], r["ttfn_eager_ms"], r["peer_ttfn_ms"]
    rows = [
        "| measure | RWKV-7, fused native step | RWKV-7, eager PyTorch step | Transformer, eager PyTorch |",
        "|---|---:|---:|---:|",
    ]
    for n in ("64", "4096"):
        rows.append(f"| time to first note, explicit trigger, context {n} tokens "
                    f"| {_ms(ttfn[n])} | {_ms(eager[n])} | {_ms(peer[n])} |")
    rows.append(f"| ratio 4096 / 64 | {r['ttfn_ratio_4096_64']:.2f} | {r['ttfn_eager_ratio_4096_64']:.2f} "
                f"| {r['peer_ratio_4096_64']:.2f} |")
    steps = r["steps_to_first_note"]
    rows.append(f"| model steps before that first note, context 64 / 4096 | {steps['64']} / {steps['4096']} "
                f"| the same | the same |")
    pause = r["ttfn_after_pause_ms"]
    rows.append(f"| time to first note, silence trigger (answer prepared during the pause), context 64 / 4096 "
                f"| {pause['64']:.2f} / {pause['4096']:.2f} ms | {NONE} | {NONE} |")
    rt = r["realtime_x"]
    rows.append(f"| 2 bars at 120 BPM, speed vs real time, K=1 / K=4 variations "
                f"| {rt['k1']:.0f}x / {rt['k4']:.0f}x | {NONE} | {NONE} |")
    rows += _jack_rows(r.get("jack"))
    return "\n".join(rows) + _conditions(r) + f"\n(model: {r['model']}; peer: {r['peer']})"


def model_table(r: dict) -> str:
    """bench/model_bench.py: step, prefill, training and memory against the `rwkv` package."""
    step, peer = r["step"], r.get("peer", {})
    fp32, bf16 = peer.get("cpu fp32", {}), peer.get("cpu bf16", {})

    def peer_cell(row: dict, key: str, note: str = "") -> str:
        return f"{row[key]:.2f} ms{note}" if key in row else NONE

    rows = ["| measure | ours | `rwkv` package |", "|---|---:|---:|"]
    for label, ours, theirs in (("fused native step, fp32 weights", "native_fp32", fp32),
                                ("fused native step, bf16 weights", "native_bf16", bf16),
                                ("eager PyTorch step, fp32", "torch", {})):
        b1, b4 = step["B1"][ours], step["B4"][ours]
        rows.append(f"| one-token step, batch 1, {label} | {b1:.3f} ms | {peer_cell(theirs, 'B1')} |")
        rows.append(f"| one-token step, batch 4, {label} | {b4:.3f} ms ({b4 / b1:.2f}x batch 1) "
                    f"| {peer_cell(theirs, 'B4_four_calls', ' (4 calls)')} |")
    pre = r["prefill"]
    rows.append(f"| prefill, 256 / 2048 tokens, chunked WKV | {pre['T256']['tokens_per_s']:,.0f} / "
                f"{pre['T2048']['tokens_per_s']:,.0f} tokens/s | {NONE} |")
    t = r.get("training_cpu")
    if t and "speedup_model" in t:
        threads = f"{t['threads']} thread" + ("s" if t["threads"] != 1 else "")
        rows.append(f"| training fwd+bwd, B={t['B']} T={t['T']}, {threads}: chunked vs reference loop "
                    f"| WKV op alone {t['speedup_op']:.1f}x; whole model {t['model_chunked']['tokens_per_s']:,.0f} "
                    f"vs {t['model_reference']['tokens_per_s']:,.0f} tokens/s, {t['speedup_model']:.1f}x | {NONE} |")
    mem = r["memory"]
    rows.append(f"| LM-head memory of a 4+2-bar window, sliced / full | {mem['sliced']['lm_head_bytes'] / 2**20:.2f} / "
                f"{mem['full']['lm_head_bytes'] / 2**20:.2f} MiB ({mem['lm_head_ratio']:.3f}; completion share "
                f"{mem['target_share']:.3f}) | {NONE} |")
    return "\n".join(rows) + _conditions(r)


_QUALITY_ROWS = [  # (label, continuation key or None for NLL rows, truth key)
    ("val NLL (nats/token)", "val_nll", None),
    ("bits/note", "bits_per_note", None),
    ("chord-tone ratio (annotated chords)", "chord_tone", "chord_tone_truth"),
    ("in-key ratio", "in_key", "in_key_truth"),
    ("note density ratio gen/true (median)", "density_ratio", None),
    ("near-silent answers (< 25% of the notes)", "near_silent", None),
    ("notes per onset", "notes_per_onset", "notes_per_onset_truth"),
    ("pitch-class histogram similarity", "pitch_class_similarity", None),
    ("median pitch distance (semitones)", "median_pitch_distance", None),
    ("bars of the wrong length", "wrong_length_bars", None),
]


_REPEATS = {"repeat_last_2": "repeat last 2 bars", "repeat_4_back": "repeat bars 4 back"}


def _cell(value: float | None) -> str:
    return NONE if value is None or value != value else f"{value:.3f}"


def quality_table(r: dict) -> str:
    """bench/model_quality.py: each bundled model per source, then the targets."""
    names = r["order"]
    lines = []
    sources = sorted({s for m in r["models"].values() for s in m["sources"]})
    for source in sources:
        first = r["models"][names[0]]["sources"].get(source, {})
        # The heard bars played again as the answer (no model): what real music
        # of the same song scores without knowing its future.
        refs = ((first.get("continuation") or {}).get("reference") or {})
        head = [f"**{source}**"] + [f"`{n}`" for n in names] + ["truth"] + [_REPEATS[k] for k in refs]
        lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        for label, key, truth in _QUALITY_ROWS:
            cells, true = [], NONE
            for n in names:
                src = r["models"][n]["sources"].get(source, {})
                cont = src.get("continuation") or {}
                value = src.get(key, cont.get(key))
                cells.append(_cell(value))
                if truth and cont.get(truth) is not None and cont[truth] == cont[truth]:
                    true = f"{cont[truth]:.3f}"
            if all(c == NONE for c in cells):
                continue  # e.g. no chord annotations in this source
            lines.append(f"| {label} | " + " | ".join(cells + [true] + [_cell(refs[k].get(key)) for k in refs]) + " |")
        samples = (first.get("continuation") or {}).get("samples", 0)
        lines += [f"| held-out pieces / continuations | {first.get('val_pieces', 0)} / {samples} |"
                  + " |" * (len(head) - 2), ""]
    lines += ["| target (POP909, `" + names[0] + "`) | measured | goal | met |", "|---|---:|---|---|"]
    for t in r["targets"]:
        lines.append(f"| {t['target']} | {t['measured']:.3f} | {t['goal']} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + f"\n\n(evaluated {r['date']}; JSON in bench/results/)"


def backbone_table(r: dict) -> str:
    """bench/backbone_eval.py: RWKV-7 against the LSTM and Transformer, per source."""
    rows = ["| backbone | source | params | val NLL (nats/token) | bits/note | chord-tone (truth) "
            "| in-key (truth) | step @ctx 64 / 2048 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    sources = sorted({s for row in r["rows"] for s in row["sources"]})
    for source in sources:
        for row in r["rows"]:
            src = row["sources"].get(source)
            if src is None:
                continue
            c = src["continuation"]

            def pair(key: str) -> str:
                v, t = c.get(key), c.get(f"{key}_truth")
                if v is None or v != v:
                    return NONE
                return f"{v:.3f} ({t:.3f})" if t is not None and t == t else f"{v:.3f}"
            rows.append(f"| {row['name']} | {source} | {row['params'] / 1e6:.2f}M | {src['val_nll']:.3f} "
                        f"| {src['bits_per_note']:.2f} | {pair('chord_tone')} | {pair('in_key')} "
                        f"| {_ms(row['step_ms_ctx64'])} / {_ms(row['step_ms_ctx2048'])} |")
    steps = {row["train"].get("steps") for row in r["rows"] if row.get("train")}
    return "\n".join(rows) + (f"\n\n(evaluated {r['date']}: {r['samples']} continuations and at most "
                              f"{max(row['sources'][s]['val_pieces'] for row in r['rows'] for s in row['sources'])}"
                              f" held-out pieces per source; training steps {', '.join(map(str, sorted(steps)))};"
                              " JSON in bench/results/)")


def steering_table(r: dict) -> str:
    """bench/steering_bench.py: what each control does to held-out answers, and its cost live."""
    sources = list(r["sources"])
    lines = ["| setting | " + " | ".join(f"{s}: in mask / notes per bar / notes per onset / chord tones / in key"
                                          for s in sources) + " |",
             "|---" + "|---" * len(sources) + "|"]
    names = list(r["sources"][sources[0]]["settings"])
    for name in names:
        cells = []
        for s in sources:
            m = r["sources"][s]["settings"][name]
            cells.append(" / ".join(_cell(m[k]) if k != "notes_per_bar" and k != "notes_per_onset"
                                    else (NONE if m[k] != m[k] else f"{m[k]:.2f}")
                                    for k in ("allowed", "notes_per_bar", "notes_per_onset", "chord_tone", "in_key")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sweeps = []
    for s in sources:
        for control, what in (("density", "notes per bar"), ("texture", "notes per onset")):
            w = r["sources"][s][control]
            sweeps.append(f"{s} {control}: {what} {' < '.join(f'{v:.2f}' for v in w['values'])} "
                          f"({'monotonic' if w['monotonic'] else 'NOT monotonic'}, {w['range_ratio']:.1f}x)")
    t = r["live"]["ttfn_ms"]
    live = (f"Live, {r['live']['context_tokens']} tokens heard, one thread, median time to the first note: "
            f"controls off {_ms(t['off'])}, all on {_ms(t['on'])} ({r['live']['controls_cost']:+.0%}); "
            f"regenerate from bar 2 {_ms(t['regenerate from bar 2'])}, more like this {_ms(t['more like this'])}.")
    worst = max(m["wrong_length_bars"] for s in r["sources"].values() for m in s["settings"].values())
    sweeps.append(f"bars of the wrong length under any setting: {worst:.3f}")
    return ("\n".join(lines) + "\n\n" + "; ".join(sweeps) + ".\n\n" + live
            + f"\n\n({r['cases_per_source']} held-out cuts per source, 2 bars each, model `{r['model']}`, "
            f"measured {r['date']}; JSON in bench/results/)")


def style_table(r: dict) -> str:
    """bench/style_bench.py: state tuning (a style) against the full fine-tune, same budgets."""
    method = {"style": "state tuning (style)", "finetune": "full fine-tune"}
    rows = ["| pieces (learned from / held for early stopping) | budget | method | steps (stopped by) "
            "| held-out val NLL, whole pieces (drop) | 2-bar answers after 4 bars (drop) | file |",
            "|---|---:|---|---:|---:|---:|---:|",
            f"| – | – | the base alone | – | {r['nll_before']:.3f} | {r['answer_nll_before']:.3f} | – |"]
    for x in r["runs"]:
        size = x["file_bytes"] / 1024
        rows.append(f"| {x['pieces']} ({x['train_pieces']} / {x['val_pieces']}) | {x['budget_min']:g} min "
                    f"| {method[x['method']]} | {x['steps']} ({x['stopped']}) | {x['nll_after']:.3f} "
                    f"({x['drop_pct']:.1f}%) | {x['answer_nll_after']:.3f} ({x['answer_drop_pct']:.1f}%) "
                    f"| {size:,.0f} KiB |")
    sw = r["switch"]
    rows += ["", "| switching styles live (median) | time |", "|---|---:|",
             f"| swap of the initial state | {sw['swap_ms']:.3f} ms |",
             f"| re-prime the engine's context from it ({sw['reprime_context_tokens']} tokens) "
             f"| {_ms(sw['reprime_context_ms'])} |",
             f"| re-prime a 2048-token context | {sw['reprime_2048_ms']:.0f} ms |"]
    if "ready_switch_ms" in sw:
        rows += [f"| switch to a style kept ready (the whole context kept) | {sw['ready_switch_ms']:.3f} ms |"]
        rows += [f"| keeping {rows_} rows ready: catch-up per engine poll ({c['tokens']} tokens) | {c['ms']:.1f} ms |"
                 for rows_, c in sw["ready_catch_up_by_rows"].items()]
        rows += [f"| live path per token heard, without / with ready rows | {sw['feed_us_alone']:.0f} / "
                 f"{sw['feed_us_with_ready']:.0f} us |"]
    rows += ["", "| target | measured | met |", "|---|---|---|"]
    rows += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |" for t in r["targets"]]
    return "\n".join(rows) + (f"\n\n({r['source']}: {r['held_out_pieces']} held-out pieces, "
                              f"{r['held_out_tokens']:,} tokens; NLL in nats/token; "
                              f"base {r['base']}; {r['threads']} thread; runs {r['date']}, scored {r['scored']}, "
                              f"1-minute load average {r['load_avg']:.1f} at the end; JSON in bench/results/)")


def blend_table(r: dict) -> str:
    """bench/style_blend.py: answers' NLL along the blend of two styles."""
    a, b = r["sources"]
    rows = [f"| blend: share of {b} | {a} held-out | {b} held-out |", "|---:|---:|---:|",
            f"| the base alone | {r['base_alone'][a]:.3f} | {r['base_alone'][b]:.3f} |"]
    rows += [f"| {x['t']:.0%} | {x[a]:.3f} | {x[b]:.3f} |" for x in r["blends"]]
    return "\n".join(rows) + (f"\n\n(NLL of 2-bar answers after 4 bars, nats/token; each style learned from "
                              f"{r['pieces']} pieces in 1 min; base {r['base']}; {r['date']}; JSON in bench/results/)")


TABLES: dict[str, Callable[[dict], str]] = {"live_bench": live_table, "model_bench": model_table,
                                            "model_quality": quality_table, "backbone_eval": backbone_table,
                                            "steering_bench": steering_table, "style_bench": style_table,
                                            "style_blend": blend_table}


def render(name: str, results: Path = RESULTS) -> str:
    """The table of benchmark ``name`` from its JSON in ``results``."""
    return TABLES[name](json.loads((results / f"{name}.json").read_text()))


def _block(name: str) -> re.Pattern:
    # Group 2 is what stands between the marker lines (nothing, in a new block).
    return re.compile(rf"(<!-- figures:{name} -->\n)(.*?\n)?(<!-- /figures:{name} -->)", re.S)


def readme_table(name: str, text: str) -> str | None:
    """The table between ``name``'s markers in the README text, or None without markers."""
    m = _block(name).search(text)
    return None if m is None else (m.group(2) or "").removesuffix("\n")


def fill(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked table replaced by its rendering."""
    for name in TABLES:
        if (results / f"{name}.json").exists():
            table = render(name, results)
            text = _block(name).sub(lambda m: m.group(1) + table + "\n" + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the marked tables in README.md")
    args = ap.parse_args(argv)
    if args.write:
        README.write_text(fill(README.read_text()))
        return 0
    for name in TABLES:
        if (RESULTS / f"{name}.json").exists():
            print(f"{name}:\n{render(name)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
