"""The tables that compare arms rather than list them: the effect of each factor (main effects over the other
factors' settings, and interactions where two factors are crossed), how many seeds would settle each, the
BERT-style vs RoBERTa-style GLUE comparison, and the training configurations."""

from dataclasses import dataclass
from itertools import combinations

from ablations.report import paper, stats
from ablations.report.tables import (CELL_STATISTIC, LOSS, TABLE2_ROWS, Arms, Column, Table, effect_record, fmt,
                                     fmt_effect, fmt_paper, paper_record, show)

EFFECT_STATISTIC = ("Each effect is the same contrast of the cells' means (treatment − control, each setting of the "
                    "other factors counted once), with a 95% Student-t interval over pretraining seeds (paired when "
                    "every arm ran the same seeds, else Welch's); n = pretraining seeds. n.s.: the interval holds 0 "
                    "(not resolved: too few seeds and no effect both read so); one seed gives no interval. Fine-tuning "
                    "seeds are reduced to their median within a pretraining seed first.")


@dataclass(frozen=True)
class Factor:
    """One row of effects: treatment arms against control arms that agree on every science setting but the ones
    that make the factor's levels (`varies`: dotted settings, a group's name for all of its settings). Agreeing
    on the other factors is not enough: arms that differ in a setting no factor names (masking.dupe_factor, a
    token budget) or in the corpus are not each other's control."""
    name: str
    varies: tuple[str, ...]
    control: dict
    treatment: dict
    paper: object  # column -> PaperValue | None

    def settings(self, arms: Arms) -> list[tuple[list, list]]:
        """(control arms, treatment arms) at each setting of the rest where both were run. Two arms at one setting
        that differ only in a setting the factor varies (an LR swept inside one batch size) share that setting."""
        def rest(arm):
            return repr(sorted((k, v) for k, v in arms.science(arm).items()
                               if not any(k == s or k.startswith(s + ".") for s in self.varies)))
        found: dict[str, tuple[list, list]] = {}
        for side, level in enumerate((self.control, self.treatment)):
            for arm in arms.find(**level):
                found.setdefault(rest(arm), ([], []))[side].append(arm)
        return [(controls, treatments) for controls, treatments in found.values() if controls and treatments]

    def effect(self, arms: Arms, column: Column, target: float | None = None) -> stats.Effect | None:
        settings = self.settings(arms)
        return stats.contrast(_terms(arms, column, _weights(settings)), target) if settings else None


def _weights(settings: list[tuple[list, list]], sign: float = 1.0) -> dict[tuple, float]:
    """Each arm's weight in the mean over settings of (mean of the treatment arms - mean of the control arms): each
    setting counted once, and each arm once, whatever the number of arms it is compared with."""
    weights: dict[tuple, float] = {}
    for controls, treatments in settings:
        for side, group in ((sign, treatments), (-sign, controls)):
            for arm in group:
                weights[arm] = weights.get(arm, 0.0) + side / (len(settings) * len(group))
    return weights


def _terms(arms: Arms, column: Column, weights: dict[tuple, float]) -> list:
    return [(weight, arms.summary(arm, column)) for arm, weight in weights.items()]


SCHEDULE_PRESET = tuple(f"schedule.{k}" for k in ("name", "batch_size", "peak_lr", "paper_steps"))  # conf/schedule


def factors(arms: Arms) -> list[Factor]:
    """The effects the runs can estimate, named as the paper reads them."""
    out = []
    if arms.find(masking="static") and arms.find(masking="dynamic"):
        out.append(Factor("dynamic − static masking", ("masking.name",), {"masking": "static"}, {"masking": "dynamic"},
                          lambda c: paper.delta("table1", "dynamic", "static", c)))
    control = TABLE2_ROWS[0]
    for label, row, where in TABLE2_ROWS[1:]:
        if arms.find(**control[2]) and arms.find(**where):
            name = f"{label} − segment_pair + NSP" + (" (NSP removal)" if row == "full_sentences" else "")
            out.append(Factor(name, ("objective", "input_format"), control[2], where,
                              lambda c, row=row: paper.delta("table2", row, "segment_pair+nsp", c)
                              or (paper.bert_no_nsp(c) if row == "full_sentences" else None)))
    batches = [b for b in ("bsz256", "bsz2k", "bsz8k") if arms.find(schedule=b)]
    for larger in batches[1:]:
        out.append(Factor(f"{larger} − {batches[0]} (larger batch)", SCHEDULE_PRESET, {"schedule": batches[0]},
                          {"schedule": larger}, lambda c, b=larger: paper.delta("table3", b, batches[0], c)
                          if batches[0] == "bsz256" else None))
    sizes = sorted({dict(a)["data_size"] for a in arms.by_arm}, key=lambda s: arms.train_tokens(data_size=s))
    for larger in sizes[1:]:
        out.append(Factor(f"data {show(larger)} − {show(sizes[0])} (more data)", ("data.size",),
                          {"data_size": sizes[0]}, {"data_size": larger},
                          lambda c: paper.delta("table4", "roberta_more_data_100k", "roberta_books_wiki_100k", c)))
    return out


def _target(arms: Arms, column: Column, p: paper.PaperValue | None) -> float | None:
    """The effect seeds are counted for: the paper's, where it is in our units (real GLUE tasks); else ours."""
    stage, _, metric = (column.key or "").partition(":")
    real = metric and arms.recipes.get(stage) and not arms.synthetic(stage)
    return p.value if real and p is not None else None


def ablation_summary(arms: Arms, columns: list[Column]) -> list[Table] | str:
    """The effects table and, beside it, the seeds each effect would need."""
    columns = [c for c in columns if c.key] + [LOSS]
    found = factors(arms)
    if not found:
        return ("Ablation summary: skipped, the runs vary none of masking, input format / NSP, batch size, data size; "
                "python run.py -m objective=mlm,mlm_nsp masking=static,dynamic fills it.")
    labels = [arms.column_label(c) for c in columns]
    effects = Table("ablation_summary", "Ablation summary: effect of each factor (treatment − control)",
                    ["effect"] + [h for label in labels for h in (label, "paper")], caption=arms.caption())
    seeds = Table("seeds_needed", "Pretraining seeds that would resolve each effect (95% interval, 80% power)",
                  ["effect"] + labels, caption=arms.caption())
    for factor in found:
        cells, needed = [], []
        for column, label in zip(columns, labels):
            p = factor.paper(column.paper) if column.paper else None
            e = factor.effect(arms, column, _target(arms, column, p))
            effects.records.append(effect_record(factor.name, label, e, column.digits, p))
            cells += [fmt_effect(e, column.digits), fmt_paper(p, signed=True) + (f" ({p.source})" if p else "")]
            needed.append(_needed(e))
            seeds.records.append({"row": factor.name, "column": label, "text": needed[-1],
                                  **({} if e is None else {"seeds_needed": e.seeds_needed, "for": e.target,
                                                           "n": e.n})})
        effects.rows.append([factor.name] + cells)
        seeds.rows.append([factor.name] + needed)
    for a, b in combinations([f for f in found if len(f.settings(arms)) > 1], 2):
        row, cells, any_value = f"interaction: ({a.name}) × ({b.name})", [], False
        for column, label in zip(columns, labels):
            e = _interaction(arms, a, b, column)
            any_value |= e is not None
            effects.records.append(effect_record(row, label, e, column.digits, None))
            cells += [fmt_effect(e, column.digits), "—"]
        if any_value:
            effects.rows.append([row] + cells)
    effects.footnotes += [EFFECT_STATISTIC, "An interaction is the first factor's effect where the second is at its "
                          "treatment minus where it is at its control.",
                          "Paper: differences of the printed values of RoBERTa Tables 1-4 (dev; Table 3's perplexities "
                          "on held-out training data as MLM loss, ln of perplexity), BERT Table 5's No NSP where RoBERTa "
                          "Table 2 lacks the column; each cell names its source. "
                          + paper.caveat("ablation_nsp_confound")]
    if arms.synthetic_corpus or arms.synthetic_glue:
        effects.footnotes.append("Synthetic data: compare the directions of our effects with the paper's, not their "
                                 "sizes.")
    seeds.footnotes.append("From the observed spread of each effect between pretraining seeds: the smallest n with "
                           "(t_0.975 + t_0.80) × sd / √n ≤ |effect|, for the paper's effect where it is in our units "
                           "(real GLUE tasks), else for the effect observed. —: one seed or no spread, so no estimate.")
    return [effects, seeds]


def _interaction(arms: Arms, a: Factor, b: Factor, column: Column) -> stats.Effect | None:
    """a's effect where b is at its treatment minus where b is at its control."""
    sides = [[(controls, treatments) for controls, treatments in a.settings(arms)
              if all(dict(arm)[k] == v for arm in treatments for k, v in level.items())]
             for level in (b.treatment, b.control)]
    if not all(sides):
        return None
    weights = _weights(sides[0])
    for arm, weight in _weights(sides[1], -1.0).items():
        weights[arm] = weights.get(arm, 0.0) + weight
    return stats.contrast(_terms(arms, column, weights))


def _needed(e: stats.Effect | None) -> str:
    if e is None or not e.has_interval:
        return "—"
    if e.seeds_needed is None:
        return "> 1000" if e.value else "—"
    return f"{e.seeds_needed} ({e.target}, now {e.n})"


BERT_STYLE = {"objective": "mlm_nsp", "masking": "static"}
ROBERTA_STYLE = {"objective": "mlm", "masking": "dynamic"}


def _recipe_arms(arms: Arms) -> tuple[tuple, tuple] | None:
    """BERT-style (MLM + NSP, static, the smallest batch and data) and RoBERTa-style (MLM, dynamic, the largest
    batch and data) among the arms: each the arm closest to its recipe."""
    schedules = [b for b in ("bsz256", "bsz2k", "bsz8k") if arms.find(schedule=b)]
    sizes = sorted({dict(a)["data_size"] for a in arms.by_arm}, key=lambda s: arms.train_tokens(data_size=s))
    picked = []
    for recipe, end in ((BERT_STYLE, 0), (ROBERTA_STYLE, -1)):
        candidates = arms.find(**recipe)
        if not candidates:
            return None
        wanted = {"schedule": schedules[end], "data_size": sizes[end]}
        picked.append(max(candidates, key=lambda a: sum(dict(a)[k] == v for k, v in wanted.items())))
    return picked[0], picked[1]


def glue_comparison(arms: Arms, columns: list[Column]) -> Table | str:
    if not columns:
        return "GLUE comparison: skipped, the runs hold no GLUE results; stage=all (the default) fills it."
    found = _recipe_arms(arms)
    if found is None:
        return ("GLUE comparison: skipped, it needs a BERT-style (mlm_nsp, static) and a RoBERTa-style (mlm, dynamic) "
                "arm; python run.py -m experiment=glue_comparison fills it.")
    bert, roberta = found
    describe = lambda arm: ", ".join(show(dict(arm)[k]) for k in ("objective", "masking", "input_format", "schedule",
                                                                   "data_size"))
    table = Table("glue_comparison", "GLUE: BERT-style vs RoBERTa-style pretraining",
                  ["task", f"BERT-style ({describe(bert)})", f"RoBERTa-style ({describe(roberta)})",
                   "RoBERTa-style − BERT-style", "paper BERT-base", "paper RoBERTa-base",
                   "paper RoBERTa-base − BERT-base"], caption=arms.caption([bert, roberta]))
    for column in columns:
        b, r = arms.summary(bert, column), arms.summary(roberta, column)
        e = stats.contrast([(1, r), (-1, b)])
        pb, pr = paper.value("glue_dev_bert", "bert_base", column.paper), paper.value("glue_dev_roberta", "roberta_base",
                                                                                      column.paper)
        pd = paper.PaperValue(round(pr.value - pb.value, 1), "dev", "delta", f"{pr.source} − {pb.source}") \
            if pb and pr else None
        _comparison_row(table, arms.column_label(column), b, r, e, pb, pr, pd)
    b, r = _average(arms, bert, columns), _average(arms, roberta, columns)
    tasks = sorted({c.key.split(":")[1].split("/")[0].removesuffix("_mm") for c in columns})
    _comparison_row(table, f"average of {len(tasks)} task scores", b, r, stats.contrast([(1, r), (-1, b)]), None, None,
                    None)
    table.footnotes += [
        CELL_STATISTIC + " Task columns: GLUE's metric of the task (MRPC and QQP: mean of F1 and accuracy; STS-B: of "
        "Pearson and Spearman) x100. The average is over task scores, MNLI counted once (the mean of matched and "
        "mismatched), as glue/score is; the papers print no comparable average.", EFFECT_STATISTIC,
        "Paper columns are dev numbers: BERT-base from BERT Table 5 (it prints only MNLI-m, QNLI, MRPC, SST-2 dev), "
        "RoBERTa-base from the fairseq README (= RoBERTa Table 8). The paper delta is RoBERTa-base − BERT-base: models "
        "trained on other data, for other steps and batches, not the difference of our two arms.",
        paper.caveat("glue_mixed"), paper.caveat("glue_dev_metrics")]
    return table


SQUAD_ROWS = [(f"SQuAD {v} {m.upper() if m == 'em' else 'F1'}", f"rc:{task}/{'exact' if m == 'em' else 'f1'}",
               f"{task}_{m}") for v, task in (("1.1", "squad11"), ("2.0", "squad20")) for m in ("em", "f1")]


def squad_comparison(arms: Arms) -> Table | str:
    """The tutorial's SQuAD comparison (BERT-large vs RoBERTa-large, EM and F1, and human performance) beside our
    BERT-style and RoBERTa-style arms."""
    found = _recipe_arms(arms)
    rows = [(label, Column(label, key), key_paper) for label, key, key_paper in SQUAD_ROWS
            if any(arms.values(arm, key) for arm in (found or ()))]
    if found is None or not rows:
        return ("SQuAD comparison: skipped, it needs SQuAD results of a BERT-style (mlm_nsp, static) and a "
                "RoBERTa-style (mlm, dynamic) arm; python run.py -m experiment=glue_comparison fills it.")
    bert, roberta = found
    table = Table("squad_comparison", "SQuAD: BERT-style vs RoBERTa-style pretraining",
                  ["metric", "BERT-style", "RoBERTa-style", "RoBERTa-style − BERT-style", "paper BERT-large",
                   "paper RoBERTa-large", "human"], caption=arms.caption([bert, roberta]))
    for label, column, key in rows:
        b, r = arms.summary(bert, column), arms.summary(roberta, column)
        human = paper.value("squad_comparison", "human", key)
        _comparison_row(table, arms.column_label(column), b, r, stats.contrast([(1, r), (-1, b)]),
                        paper.value("squad_comparison", "bert_large", key),
                        paper.value("squad_comparison", "roberta_large", key), None)
        table.rows[-1][-1] = fmt_paper(human)
        table.records[-1]["paper_human"] = getattr(human, "value", None)
    table.footnotes += [CELL_STATISTIC + " EM and F1 as the official SQuAD scripts compute them (0-100); SQuAD 2.0 "
                        "at the no-answer threshold chosen on dev.", EFFECT_STATISTIC,
                        "Paper columns: BERT-large dev (BERT Tables 2 and 3; RoBERTa Table 6 lists SQuAD 2.0 as "
                        "79.0/81.8), RoBERTa-large dev (RoBERTa Table 6), the rows the tutorial quotes; human: the "
                        "SQuAD papers' human performance on the test sets. Large models trained on other data: set "
                        "directions, not values, beside ours."]
    return table


def _comparison_row(table: Table, label: str, b, r, e, pb, pr, pd) -> None:
    table.rows.append([label, fmt(b), fmt(r), fmt_effect(e), fmt_paper(pb), fmt_paper(pr), fmt_paper(pd, signed=True)])
    table.records.append({"row": label, "bert_mean": getattr(b, "mean", None), "bert_std": getattr(b, "std", None),
                          "bert_n": getattr(b, "n", None), "roberta_mean": getattr(r, "mean", None),
                          "roberta_std": getattr(r, "std", None), "roberta_n": getattr(r, "n", None),
                          **effect_record(label, "RoBERTa-style − BERT-style", e, 1, pd),
                          "paper_bert": getattr(pb, "value", None), "paper_roberta": getattr(pr, "value", None)})


def _average(arms: Arms, arm: tuple, columns: list[Column]) -> stats.Summary | None:
    """Per pretraining seed, the mean of the task scores (MNLI once); seeds missing a task are left out."""
    tasks = sorted({c.key.split(":")[1].split("/")[0].removesuffix("_mm") for c in columns})
    per_task = [stats.per_pretraining_seed(arms.values(arm, f"glue:{t}/score", 100)) for t in tasks]
    shared = set.intersection(*(set(v) for v in per_task)) if per_task else set()
    return stats.summarize({(seed,): sum(v[seed] for v in per_task) / len(per_task) for seed in shared})


def _float(value) -> float | None:
    """W&B stores a whole float as an integer; records read the same from results.json and from W&B."""
    return None if value is None else float(value)


def training_configs(arms: Arms) -> Table:
    table = Table("training_configs", "Training configuration of each arm beside BERT's and RoBERTa's",
                  ["arm", "batch", "sequences/step", "peak LR", "warmup steps", "steps", "seq len", "train data",
                   "real tokens seen", "FLOPs", "MFU"], caption=arms.caption())
    for arm, runs in arms.by_arm.items():
        run = runs[0]
        mfus = [r.compute["mfu"] for r in runs if r.compute.get("mfu") is not None]
        row = [run.plan.get("batch"), run.plan.get("sequences"), run.plan.get("peak_lr"), run.plan.get("warmup_steps"),
               run.plan.get("steps"), run.seq_len, run.train_tokens, run.tokens_seen, _float(run.compute.get("total_flops")),
               sum(mfus) / len(mfus) if mfus else None]
        text = [None if v is None else f"{v:.3g}" if k == 8 else f"{v:.1%}" if k == 9 else f"{v} tokens" if k == 6
                else f"{v}" for k, v in enumerate(row)]
        table.rows.append([run.name.rsplit("-s", 1)[0]] + ["—" if v is None else v for v in text])
        table.records.append({**dict(zip(table.header, [table.rows[-1][0], *row])), "peak": run.compute.get("peak")})
    for who in ("bert", "roberta"):
        values = [paper.value("settings", who, c) for c in ("batch_size", "peak_lr", "warmup_steps", "steps",
                                                             "seq_len", "data")]
        row = [values[0], None, *values[1:5], values[5], None, None, None]
        table.rows.append([f"{'BERT' if who == 'bert' else 'RoBERTa'} (paper)"] + [fmt_paper(v) for v in row])
        table.records.append({**dict(zip(table.header, [table.rows[-1][0], *(getattr(v, "value", None) for v in row)])),
                              **paper_record(values[0])})
    table.footnotes += ["Ours: batch is the preset's batch in full-length sequences; each step takes the "
                        "sequences/step that hold batch × seq_len real tokens in the arm's input format. FLOPs: model "
                        "FLOPs of the cell (forward + backward, MLM head on masked positions); MFU: achieved model "
                        "FLOP/s over the devices' peak (CPU: a measured fp32 matmul peak), mean over seeds.",
                        paper.caveat("settings")]
    return table
