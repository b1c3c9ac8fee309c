"""The reading-comprehension stage end to end: official files in, official-format predictions out, and every
reported number recomputed from those predictions by an independent implementation of the official scripts."""

import csv
import json

import pytest

from ablations.rc.stage import score
from ablations.rc.tasks import TASKS, Answer, SpanExample, load
from ablations.runner import run_cell
from conftest import make_cfg
from squad_reference import evaluate

TINY = ["data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384", "trainer.log_every_steps=2",
        "glue.tasks=[]", "logger=none"]
PASSAGE = ("Mira chopped the onion in the pantry. Bruno stirred the soup with a spoon. Later Ada washed the cups in "
           "the sink, and Elena dried them.")
QUESTIONS = [("Who chopped the onion?", "Mira"), ("What did Bruno stir?", "the soup"),
             ("Where did Ada wash the cups?", "in the sink"), ("Who dried the cups?", "Elena")]


def squad_file(version: str, split: str) -> dict:
    qas = []
    for k, (question, answer) in enumerate(QUESTIONS * 3):
        qas.append({"id": f"{split}-{k}", "question": question,
                    "answers": [{"text": answer, "answer_start": PASSAGE.index(answer)}]})
        if version == "2.0":
            qas[-1]["is_impossible"] = False
            if k % 3 == 0:
                qas.append({"id": f"{split}-{k}-none", "question": "Who painted the door?", "answers": [],
                            "is_impossible": True})
    return {"version": version, "data": [{"title": "Kitchen", "paragraphs": [{"context": PASSAGE, "qas": qas}]}]}


def write_official_files(folder):
    folder.mkdir()
    for version in ("1.1", "2.0"):
        for split in ("train", "dev"):
            (folder / f"{split}-v{version}.json").write_text(json.dumps(squad_file(version, split)))
    for split in ("train", "dev"):
        for level in ("middle", "high"):
            (folder / "RACE" / split / level).mkdir(parents=True)
            for k in range(3):
                (folder / "RACE" / split / level / f"{k}.txt").write_text(json.dumps({
                    "id": f"{level}{k}.txt", "article": PASSAGE,
                    "questions": ["Who dried the cups?", "Bruno stirred _ ."],
                    "options": [["Mira", "Bruno", "Ada", "Elena"], ["the onion", "the soup", "the cups", "the sink"]],
                    "answers": ["D", "B"]}))


def test_squad20_is_reported_at_a_threshold_that_reaches_the_best_f1_even_when_that_is_abstaining_everywhere():
    """Three dev questions whose best span is wrong (one answerable, two not): abstaining everywhere scores best
    (F1 66.7). The official search then keeps its starting threshold 0, which as a threshold still answers every
    question with lower null odds; the stage must report the F1 its threshold reaches, and that is the best one."""
    examples = [SpanExample("a", "q?", "red cat sat", (Answer("red", 0),)), SpanExample("b", "q?", "red cat sat", ()),
                SpanExample("c", "q?", "red cat sat", ())]
    features = [{"offsets": [None, None, (0, 3), (4, 7), (8, 11), None], "example": i} for i in range(3)]
    logits = [0.0, -9.0, -9.0, -9.0, 1.0, -9.0]  # "sat" (1 + 1) beats the null span (0 + 0): null odds -2
    scored = score(TASKS["squad20"], examples, features, [(logits, logits)] * 3, {"n_best": 20,
                                                                                "max_answer_length": 30})
    m = scored["metrics"]
    assert m["squad20/best_f1"] == pytest.approx(200 / 3) and m["squad20/f1"] == m["squad20/best_f1"]
    assert scored["answers"] == {"a": "", "b": "", "c": ""}


def test_official_files_give_official_format_predictions_that_reproduce_every_number(tmp_path):
    write_official_files(tmp_path / "rc")
    cfg = make_cfg(*TINY, "stage=finetune", "model.pretrained=random", "rc=files", f"rc.data_dir={tmp_path / 'rc'}",
                   "rc/protocol=cpu", "rc.seeds=[1]", "rc.protocol.epochs=1", "rc.protocol.batch_size=8",
                   root=tmp_path / "root")
    results = run_cell(cfg)
    [(fp, entry)] = results["rc"].items()
    assert entry["status"] == "ok" and set(entry["tasks"]) == {"squad11", "squad20", "race"}
    folder = tmp_path / "root" / "cells" / results["cell_id"] / "predictions" / fp
    for name in ("squad11", "squad20"):
        dataset = json.loads((tmp_path / "rc" / f"dev-v{name[-2]}.{name[-1]}.json").read_text())
        for seed, result in entry["tasks"][name]["seeds"].items():
            answers = json.loads((folder / f"{name}-seed{seed}.json").read_text())
            ids = {qa["id"] for qa in dataset["data"][0]["paragraphs"][0]["qas"]}
            assert set(answers) == ids and all(isinstance(a, str) for a in answers.values())
            official = evaluate(dataset, answers)
            reported = {k.split("/")[1]: v for k, v in result["metrics"].items()}
            for key, value in official.items():
                assert reported[key] == pytest.approx(value), (name, seed, key)
            assert reported["score"] == reported["f1"]
            if name == "squad20":
                odds = json.loads((folder / f"{name}-seed{seed}-null_odds.json").read_text())
                assert set(odds) == ids
                # "" exactly where the null odds pass the threshold chosen on dev
                assert {q for q, a in answers.items() if a == ""} >= {q for q, o in odds.items()
                                                                       if o > reported["threshold"]}
    race = load(cfg.rc, "race")["dev"]
    for seed, result in entry["tasks"]["race"]["seeds"].items():
        letters = json.loads((folder / f"race-seed{seed}.json").read_text())
        right = {e.id: letters[e.id] == "ABCD"[e.label] for e in race}
        levels = {e.id: e.level for e in race}
        assert result["metrics"]["race/accuracy"] == pytest.approx(sum(right.values()) / len(race))
        for level in ("middle", "high"):
            mine = [r for q, r in right.items() if levels[q] == level]
            assert result["metrics"][f"race/{level}_accuracy"] == pytest.approx(sum(mine) / len(mine))


def test_rc_results_are_reused_per_task_and_keyed_by_their_recipe(tmp_path):
    args = [*TINY, "stage=finetune", "model.pretrained=random", "rc.tasks=[squad11]", "rc.seeds=[1]",
            "rc.train_size=40", "rc.dev_size=20", "rc.protocol.epochs=1"]
    first = run_cell(make_cfg(*args, root=tmp_path))
    again = run_cell(make_cfg(*args, root=tmp_path))
    assert again["status"] == "skipped" and again["rc"] == json.loads(json.dumps(first["rc"]))  # as results.json
    other = run_cell(make_cfg(*args, "rc.protocol.lr=1e-3", root=tmp_path))
    assert len(other["rc"]) == 2 and set(first["rc"]) < set(other["rc"])  # both recipes kept side by side
    [fp] = set(other["rc"]) - set(first["rc"])
    assert other["rc"][fp]["recipe"]["protocol"]["lr"] == 1e-3


@pytest.mark.slow
def test_every_grid_cell_carries_squad20_scores_its_saved_predictions_reproduce(grid):
    """The default grid runs SQuAD 2.0 (synthetic) on every cell: each seed's EM/F1, recomputed by the reference
    implementation from the saved predictions, is the reported one, and Table 1's SQuAD 2.0 column is filled."""
    from omegaconf import OmegaConf

    root, _ = grid
    cells = [json.loads(p.read_text()) for p in root.glob("cells/*/results.json")]
    assert len(cells) == 4
    for results in cells:
        [(fp, entry)] = results["rc"].items()
        dev = load(OmegaConf.create(results["config"]["rc"]), "squad20")["dev"]
        dataset = {"data": [{"paragraphs": [{"context": e.context, "qas": [
            {"id": e.id, "question": e.question, "is_impossible": not e.answers,
             "answers": [{"text": a.text, "answer_start": a.start} for a in e.answers]}]} for e in dev]}]}
        for seed, result in entry["tasks"]["squad20"]["seeds"].items():
            answers = json.loads((root / "cells" / results["cell_id"] / "predictions" / fp /
                                  f"squad20-seed{seed}.json").read_text())
            official = evaluate(dataset, answers)
            assert result["metrics"]["squad20/f1"] == pytest.approx(official["f1"])
            assert result["metrics"]["squad20/HasAns_exact"] == pytest.approx(official["HasAns_exact"])
    with open(root / "sweep" / "report" / "tables" / "table1.csv") as f:
        squad = [r for r in csv.DictReader(f) if r["column"] == "synthetic SQuAD 2.0 F1"]
    ours = [r for r in squad if r["row"].split(" ")[0] in ("static", "dynamic")]
    assert len(ours) == 4 and all(r["text"] not in ("", "—") for r in ours)
    with open(root / "sweep" / "report" / "tables" / "squad_comparison.csv") as f:
        comparison = {r["row"]: r for r in csv.DictReader(f)}
    f1 = comparison["synthetic SQuAD 2.0 F1"]
    assert (float(f1["paper_bert"]), float(f1["paper_roberta"]), float(f1["paper_human"])) == (81.9, 89.4, 89.5)
    assert float(f1["delta"]) == pytest.approx(float(f1["roberta_mean"]) - float(f1["bert_mean"]), abs=1e-9)
