"""The tables that compare arms rather than list them: BERT-style vs RoBERTa-style on GLUE, the effect of
each factor (main effects and interactions from the factorial grid), and the training configurations."""

from itertools import combinations

import numpy as np

from ablations.report import stats
from ablations.report.tables import PAPER, PPL, Arms, Column, Table, average, fmt, fmt_delta, paper_value, show

# factor -> (its keys in a cell, control level, treatment level, paper row); levels chosen among those present
FACTOR_ROWS = {
    "NSP removal": ("objective", ("objective", "input_format"), "nsp_removal"),
    "dynamic masking": ("masking", ("masking",), "dynamic_masking"),
    "larger batch": ("schedule", ("schedule",), "larger_batch"),
    "more data": ("data_size", ("data", "data_size"), "more_data"),
}


def _levels(arms: Arms, factor: str) -> tuple | None:
    """(control, treatment) levels of a factor among the arms, or None when the runs do not vary it."""
    present = {dict(a)[factor] for a in arms.by_arm}
    order = {"objective": ["mlm_nsp", "mlm"], "masking": ["static", "dynamic"],
             "schedule": ["bsz256", "bsz2k", "bsz8k"]}.get(factor)
    if order:
        ranked = [v for v in order if v in present]
    else:  # data size: fewest training tokens first
        ranked = sorted(present, key=lambda size: arms.train_tokens(data_size=size))
    return (ranked[0], ranked[-1]) if len(ranked) > 1 else None


def _pairs(arms: Arms, factor: str, keys: tuple, levels: tuple):
    """(control arm, treatment arm) pairs that agree on every other factor."""
    rest = lambda arm: tuple((k, v) for k, v in arm if k not in keys)
    control = {rest(a): a for a in arms.find(**{factor: levels[0]})}
    return [(control[rest(t)], t) for t in arms.find(**{factor: levels[1]}) if rest(t) in control]


def _differences(arms: Arms, pairs, column: Column) -> list[np.ndarray]:
    out = []
    for control, treatment in pairs:
        c, t = arms.values(control, column.key, column.scale), arms.values(treatment, column.key, column.scale)
        shared = sorted(set(c) & set(t))
        if shared:
            out.append(np.array([t[k] - c[k] for k in shared]))
    return out


def ablation_summary(arms: Arms, columns: list[Column]) -> Table | str:
    columns = [c for c in columns if c.key] + [PPL]
    factors = {name: (spec, levels) for name, spec in FACTOR_ROWS.items()
               if (levels := _levels(arms, spec[0])) is not None}
    if not factors:
        return "Ablation summary: skipped, the runs vary none of objective, masking, schedule, data size; " \
               "python run.py -m objective=mlm,mlm_nsp masking=static,dynamic fills it."
    table = Table("ablation_summary", "Ablation summary: effect of each factor (treatment − control)",
                  ["factor"] + [h for c in columns for h in (c.label, "paper")])
    for name, ((factor, keys, paper_row), levels) in factors.items():
        pairs = _pairs(arms, factor, keys, levels)
        cells = []
        for column in columns:
            effect = stats.pooled(_differences(arms, pairs, column))
            paper = _paper_delta(paper_row, column, levels)
            table.records.append({"row": name, "column": column.label, **_delta_record(effect), "paper": paper})
            cells += [fmt_delta(effect, 2 if column is PPL else 1), "—" if paper is None else f"{paper:+}"]
        table.rows.append([f"{name}: {show(levels[1])} vs {show(levels[0])}"] + cells)
    for (name_a, (spec_a, levels_a)), (name_b, (spec_b, levels_b)) in combinations(factors.items(), 2):
        cells, any_value = [], False
        for column in columns:
            by_level = []
            for level in levels_b:
                pairs = [p for p in _pairs(arms, spec_a[0], spec_a[1], levels_a) if dict(p[1])[spec_b[0]] == level]
                diffs = _differences(arms, pairs, column)
                by_level.append(np.concatenate(diffs) if diffs else None)
            effect = stats.interaction(by_level[1], by_level[0]) if all(d is not None for d in by_level) else None
            any_value |= effect is not None
            table.records.append({"row": f"{name_a} x {name_b}", "column": column.label, **_delta_record(effect)})
            cells += [fmt_delta(effect, 2 if column is PPL else 1), "—"]
        if any_value:
            table.rows.append([f"interaction {name_a} × {name_b}"] + cells)
    table.footnotes += [
        "Each effect is the mean paired difference over replicates (pretraining seed x fine-tuning seed), pooled over "
        "every setting of the other factors (the main effect); [95% bootstrap interval]; ≈0 marks an interval that "
        "contains 0 (within noise). An interaction is the factor's effect at the other factor's second level minus "
        "at its first.",
        "NSP removal changes the input format with the objective (mlm: full_sentences, mlm_nsp: segment_pair by "
        "default), as RoBERTa Table 2's comparison does.",
        PAPER["caveats"]["ablation_deltas"], PAPER["caveats"]["ablation_nsp_confound"],
    ]
    return table


def _paper_delta(row: str, column: Column, levels: tuple):
    entries = [e for e in PAPER["entries"] if e["table"] == "ablation_deltas" and e["row"] == row
               and e["column"] == column.paper]
    if row == "larger_batch":  # the paper has 2K - 256 and 8K - 256
        entries = [e for e in entries if e["note"].split(": ")[1].startswith(levels[1].removeprefix("bsz").upper())]
    primary = [e for e in entries if e.get("primary")] or entries
    return primary[0]["value"] if primary else None


def _delta_record(d: stats.Delta | None) -> dict:
    return {} if d is None else {"delta": d.value, "low": d.low, "high": d.high, "n": d.n,
                                 "within_noise": d.within_noise}


def glue_comparison(arms: Arms, columns: list[Column]) -> Table | str:
    """BERT-style (mlm_nsp, static, small batch, less data) vs RoBERTa-style (mlm, dynamic, large batch, more
    data): the arms of the runs closest to each recipe."""
    if not columns:
        return "GLUE comparison: skipped, the runs hold no GLUE results; stage=all (the default) fills it."
    levels = {f: _levels(arms, f) for f in ("objective", "masking", "schedule", "data_size")}
    bert = {f: lv[0] for f, lv in levels.items() if lv}
    roberta = {f: lv[1] for f, lv in levels.items() if lv}
    pick = lambda recipe: max(arms.by_arm, key=lambda a: sum(dict(a)[f] == v for f, v in recipe.items()))
    if "objective" not in bert or "masking" not in bert:
        return "GLUE comparison: skipped, it needs both objectives and both maskings; " \
               "python run.py -m objective=mlm,mlm_nsp masking=static,dynamic fills it."
    bert_arm, roberta_arm = pick(bert), pick(roberta)
    table = Table("glue_comparison", "GLUE dev: BERT-style vs RoBERTa-style pretraining",
                  ["task", f"BERT-style ({_recipe(bert_arm, bert)})", f"RoBERTa-style ({_recipe(roberta_arm, roberta)})",
                   "delta [95% CI]", "paper BERT-base", "paper RoBERTa-base", "paper delta"])
    rows = [(c.label, arms.values(bert_arm, c.key, c.scale), arms.values(roberta_arm, c.key, c.scale), c.paper)
            for c in columns]
    rows.append(("average", average(arms, bert_arm, columns), average(arms, roberta_arm, columns), None))
    for label, b, r, paper in rows:
        d = stats.delta(r, b)
        pb, pr = (paper_value("glue_dev_bert", "bert_base", paper), paper_value("glue_dev_roberta", "roberta_base",
                                                                                   paper)) if paper else (None, None)
        pd = round(pr - pb, 1) if pb is not None and pr is not None else None
        table.records.append({"row": label, "bert": stats.summarize(b.values()), "roberta": stats.summarize(r.values()),
                              **_delta_record(d), "paper_bert": pb, "paper_roberta": pr})
        table.rows.append([label, fmt(stats.summarize(b.values())), fmt(stats.summarize(r.values())), fmt_delta(d),
                           *("—" if v is None else f"{v}" for v in (pb, pr, pd))])
    table.footnotes += [
        "Ours: GLUE task score (the mean of a task's metrics: MRPC and QQP F1 and accuracy, STS-B Pearson and "
        "Spearman), x100, median ± std over replicates; MNLI matched and mismatched accuracy apart. The delta is the "
        "mean paired difference over shared replicates with its 95% bootstrap interval (≈0: within noise).",
        "Paper columns are dev numbers: BERT-base from BERT Table 5 (it prints only MNLI-m, QNLI, MRPC, SST-2 dev), "
        "RoBERTa-base from the fairseq README (= RoBERTa Table 8).", PAPER["caveats"]["glue_mixed"],
        PAPER["caveats"]["glue_dev_metrics"],
    ]
    return table


def _recipe(arm: tuple, recipe: dict) -> str:
    return ", ".join(show(dict(arm)[f]) for f in recipe)


def training_configs(arms: Arms) -> Table:
    table = Table("training_configs", "Training configuration of each arm beside BERT's and RoBERTa's",
                  ["arm", "batch", "peak LR", "warmup steps", "steps", "seq len", "train tokens", "tokens seen"])
    for arm, runs in arms.by_arm.items():
        run = runs[0]
        row = [run.plan.get("batch"), run.plan.get("peak_lr"), run.plan.get("warmup_steps"),
               run.plan.get("steps"), run.seq_len, run.train_tokens, run.tokens_seen]
        table.rows.append([run.name.rsplit("-s", 1)[0]] + ["—" if v is None else f"{v}" for v in row])
        table.records.append(dict(zip(table.header, [table.rows[-1][0], *row])))
    for who in ("bert", "roberta"):
        row = [paper_value("settings", who, c) for c in ("batch_size", "peak_lr", "warmup_steps", "steps", "seq_len",
                                                          "data")] + [None]  # the papers state tokens per batch only
        table.rows.append([f"{who.upper() if who == 'bert' else 'RoBERTa'} (paper)"] +
                          ["—" if v is None else f"{v}" for v in row])
        table.records.append(dict(zip(table.header, [table.rows[-1][0], *row])))
    table.footnotes.append(PAPER["caveats"]["settings"])
    return table
