"""The papers' numbers (paper.yaml, copied with provenance from the reference tables) and the effects the
papers' own tables imply, each with its table, split, metric and source."""

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

PAPER = yaml.safe_load((Path(__file__).parent / "paper.yaml").read_text())
SOURCE_PAPER = {"roberta_ar5iv": "RoBERTa", "roberta_md": "RoBERTa", "bert_ar5iv": "BERT", "fairseq_readme": "fairseq"}


@dataclass(frozen=True)
class PaperValue:
    value: float | str
    split: str
    metric: str
    source: str   # e.g. "RoBERTa Table 2"

    def __str__(self):
        return str(self.value)


def _cite(entry: dict) -> str:
    paper = SOURCE_PAPER.get(entry["source"], entry["source"])
    table = entry["table"]
    if table.startswith("table"):
        return f"{paper} Table {table.removeprefix('table')}"
    return {"glue_dev_bert": f"{paper} GLUE dev", "glue_dev_roberta": f"{paper} GLUE dev"}.get(table, paper)


def value(table: str, row: str, column: str | None) -> PaperValue | None:
    """The paper's number at (table, row, column) (the primary one where a cell has several); else a field of
    that name on the row (e.g. batch_size)."""
    in_row = [e for e in PAPER["entries"] if e["table"] == table and e["row"] == row]
    candidates = [e for e in in_row if e["column"] == column]
    primary = [e for e in candidates if e.get("primary")] or candidates
    if primary:
        e = primary[0]
        return PaperValue(e["value"], e["split"], e["metric"], _cite(e))
    field = next((e for e in in_row if column in e), None)
    return None if field is None else PaperValue(field[column], "n/a", "setting", _cite(field))


def delta(table: str, treatment: str, control: str, column: str) -> PaperValue | None:
    """treatment - control in the paper's own table; for "mlm_loss", the difference of the logs of its perplexities
    (perplexity = exp(MLM loss in nats))."""
    source = "perplexity" if column == "mlm_loss" else column
    t, c = value(table, treatment, source), value(table, control, source)
    if t is None or c is None or not all(isinstance(x.value, (int, float)) for x in (t, c)):
        return None
    if column == "mlm_loss":
        return PaperValue(round(math.log(t.value) - math.log(c.value), 3), t.split, "MLM loss delta (nats)", t.source)
    return PaperValue(round(t.value - c.value, 2), t.split, f"{t.metric} delta", t.source)


def bert_no_nsp(column: str) -> PaperValue | None:
    """BERT Table 5's "No NSP" - BERT-base, for columns RoBERTa's Table 2 lacks (QNLI, MRPC)."""
    for e in PAPER["entries"]:
        if e["table"] == "ablation_deltas" and e["source"] == "bert_ar5iv" and e["column"] == column:
            return PaperValue(e["value"], e["split"], e["metric"], "BERT Table 5")
    return None


def caveat(key: str) -> str:
    return PAPER["caveats"][key]


def entries(table: str) -> list[dict]:
    return [e for e in PAPER["entries"] if e["table"] == table]
