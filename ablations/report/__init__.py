"""The report generator: `python -m ablations.report --source <dir | wandb:ENTITY/PROJECT | wandb-offline:DIR>
--out <dir>` rebuilds the paper's ablation tables from logged runs, ours beside the paper's numbers."""

import logging
from collections import Counter
from pathlib import Path

from ablations.config import ConfigError
from ablations.report import comparisons, paper, render, tables
from ablations.report.runs import STAGES, load

log = logging.getLogger(__name__)
TITLE = "RoBERTa ablations: our runs beside the papers"
NAMES = {"glue": "GLUE", "rc": "reading-comprehension"}


def build(source: str, out: Path, glue: str | None = None, rc: str | None = None) -> Path:
    """Writes report.md, report.tex, report.html, tables/*.csv and figures/*.{png,pdf} under `out`. Fine-tuning
    columns come from one fingerprint per stage: `glue` and `rc`, else the one most runs hold."""
    loaded = load(source)
    for skipped in loaded.skipped:
        log.warning("skipped %s", skipped)
    counts = {stage: Counter(fp for r in loaded.runs for fp in r.finetune.get(stage, {})) for stage in STAGES}
    chosen = {}
    for stage, wanted in (("glue", glue), ("rc", rc)):
        if wanted is not None and wanted not in counts[stage]:
            raise ConfigError(f"--{stage} {wanted}: no run holds {NAMES[stage]} results under this fingerprint; they "
                              f"hold "
                              f"{', '.join(counts[stage]) or 'none'}")
        chosen[stage] = wanted or (counts[stage].most_common(1)[0][0] if counts[stage] else None)
    arms = tables.Arms(loaded.runs, chosen)
    columns = tables.glue_columns(arms)
    built = [tables.table1(arms), tables.table2(arms), tables.table3(arms), tables.table4(arms),
             comparisons.glue_comparison(arms, columns), comparisons.squad_comparison(arms),
             comparisons.ablation_summary(arms, columns + tables.rc_columns(arms)), comparisons.training_configs(arms)]
    made = [t for b in built for t in (b if isinstance(b, list) else [b]) if isinstance(t, tables.Table)]
    notes = [t for t in built if isinstance(t, str)]
    header = _header(loaded, arms, counts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    for table in made:
        render.write_csv(out / "tables" / f"{table.key}.csv", table)
    figures = _figures(out / "figures", arms, columns, next((t for t in made if t.key == "ablation_summary"), None))
    (out / "report.md").write_text(render.markdown(TITLE, header, made, notes, figures))
    (out / "report.tex").write_text(render.latex(TITLE, header, made, notes))
    (out / "report.html").write_text(render.page(TITLE, header, made, notes, figures))
    log.info("report: %d tables, %d skipped, in %s", len(made), len(notes), out)
    return out / "report.md"


def _figures(out: Path, arms: tables.Arms, columns: list, summary) -> list:
    real_glue = arms.recipe is not None and not arms.synthetic_glue
    made = [render.loss_curves(out, _curves(arms), "Training loss (MLM, plus NSP for the NSP arms) at the logging "
                               "steps, one line per pretraining seed. " + arms.caption()),
            render.effects(out, summary.records if summary else [], "Each factor's effect per column with its 95% "
                           "interval over pretraining seeds (the ablation summary table). " + arms.caption(), real_glue),
            render.glue_tasks(out, _glue_bars(arms, columns), _paper_marks(columns) if real_glue else {},
                              "Fine-tuning dev scores by arm" + (" with the papers' BERT-base and RoBERTa-base dev "
                                                                  "numbers" if real_glue else "") + ". " + arms.caption())]
    return [f for f in made if f is not None]


def _header(loaded, arms: tables.Arms, counts: dict[str, Counter]) -> list[str]:
    statuses = Counter(r.status for r in loaded.runs)
    runs = (f"Source: {loaded.source}. {len(loaded.runs)} runs in {len(arms.by_arm)} arms: "
            + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    skipped = (f"; {len(loaded.skipped)} malformed runs skipped: " + "; ".join(loaded.skipped) if loaded.skipped
               else "; no run skipped")
    seeds = Counter(len({r.factors["seed"] for r in runs if r.status == "ok"}) for runs in arms.by_arm.values())
    lines = [runs + skipped + ".", arms.caption(),
             "Pretraining seeds per arm: " + ", ".join(f"{n} ({k} arms)" for n, k in sorted(seeds.items())) + "."
             + (" With one pretraining seed no effect has an interval: run seed=0,1,2 to get them." if set(seeds) == {1}
                else "")]
    for stage, fp in arms.fingerprints.items():
        if fp is None:
            lines.append(f"No {NAMES[stage]} results.")
            continue
        recipe = arms.recipes[stage]
        line = (f"{NAMES[stage]} fingerprint {fp} ({counts[stage][fp]} runs): {recipe['source']} tasks, protocol "
                f"{recipe['protocol']['name']} v{recipe['protocol']['version']}, fine-tuning seeds {recipe['seeds']}, "
                f"train_limit {recipe.get('train_limit')}")
        others = [f"{other} ({n} runs)" for other, n in counts[stage].items() if other != fp]
        if others:
            line += (f"; runs fine-tuned under other fingerprints left out of its columns (--{stage} picks one): "
                     + ", ".join(others))
        for (held, task), versions in sorted(arms.data_versions.items()):
            used = arms.data_used[(held, task)]
            other = [sha for sha in versions if sha != used]
            if held == stage and other:
                line += (f"; {task}: {sum(versions[sha] for sha in other)} runs fine-tuned on other data "
                         f"({', '.join(map(str, other))}) left out, the columns hold data {used} "
                         f"({versions[used]} runs)")
        lines.append(line + ".")
    return lines


def _curves(arms: tables.Arms) -> dict[str, list]:
    return {_arm_name(runs): [r.curve for r in runs if r.curve] for runs in arms.by_arm.values()
            if any(r.curve for r in runs)}


def _arm_name(runs) -> str:
    return runs[0].name.rsplit("-s", 1)[0]


def _glue_bars(arms: tables.Arms, columns) -> dict[str, dict]:
    out = {}
    for arm, runs in arms.by_arm.items():
        summaries = {arms.column_label(c): arms.summary(arm, c) for c in columns}
        values = {k: (s.mean, s.std) for k, s in summaries.items() if s}
        if values:
            out[_arm_name(runs)] = values
    return out


def _paper_marks(columns) -> dict[str, dict]:
    marks = {}
    for who, table, row in (("BERT-base", "glue_dev_bert", "bert_base"), ("RoBERTa-base", "glue_dev_roberta",
                                                                            "roberta_base")):
        values = {f"{c.label} (dev)": p.value for c in columns if (p := paper.value(table, row, c.paper))}
        if values:
            marks[who] = values
    return marks
