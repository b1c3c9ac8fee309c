"""SQuAD 1.1, SQuAD 2.0 and RACE, and their three sources (synthetic, the official files, the Hub datasets), which
all yield the same examples, so the reading-comprehension stage never knows where its data came from."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from omegaconf.errors import MissingMandatoryValue

from ablations.config import ConfigError
from ablations.hub import probe_hub


class Answer(NamedTuple):
    text: str
    start: int  # character offset in the context


class SpanExample(NamedTuple):
    id: str
    question: str
    context: str
    answers: tuple[Answer, ...]  # every gold answer (SQuAD dev has several); empty: unanswerable


class ChoiceExample(NamedTuple):
    id: str
    article: str
    question: str
    options: tuple[str, ...]
    label: int  # index of the right option
    level: str  # "middle" or "high": the school exam the article comes from


@dataclass(frozen=True)
class Task:
    name: str
    kind: str                # "span": extract the answer from the context; "choice": pick one of 4 options
    files: tuple[str, str]   # train, dev under rc.data_dir, as the official downloads name them
    hub: str
    hub_config: str | None = None
    unanswerable: bool = False  # some questions have no answer in their context


TASKS = {t.name: t for t in (
    Task("squad11", "span", ("train-v1.1.json", "dev-v1.1.json"), "rajpurkar/squad"),
    Task("squad20", "span", ("train-v2.0.json", "dev-v2.0.json"), "rajpurkar/squad_v2", unanswerable=True),
    Task("race", "choice", ("RACE/train", "RACE/dev"), "ehovy/race", "all"),
)}
SPLITS = ("train", "dev")
LEVELS = ("middle", "high")
LETTERS = ("A", "B", "C", "D")
_RACE_LAYOUT = "the official RACE layout <data_dir>/RACE/{train,dev}/{middle,high}/*.txt"


def load(rc, name: str) -> dict[str, list]:
    """{"train": [...], "dev": [...]} for task `name` from the source rc.source."""
    if name not in TASKS:
        raise ConfigError(f"rc.tasks: unknown task {name!r}; allowed {', '.join(TASKS)}")
    task = TASKS[name]
    if rc.source == "synthetic":
        from ablations.rc import synthetic
        return synthetic.task(name, rc.train_size, rc.dev_size, rc.num_topics)
    if rc.source == "files":
        root = _data_dir(rc)
        read = read_squad if task.kind == "span" else read_race
        return {split: read(root / file, task) for split, file in zip(SPLITS, task.files)}
    if rc.source == "hub":
        return _hub(task)
    raise ConfigError(f"rc.source={rc.source}: allowed synthetic, files, hub")


def _data_dir(rc) -> Path:
    """conf/rc/files.yaml leaves data_dir as ???, which OmegaConf raises on reading: say what to set instead."""
    try:
        data_dir = rc.data_dir
    except (AttributeError, MissingMandatoryValue):
        data_dir = None
    if not data_dir:
        raise ConfigError("rc=files needs rc.data_dir=<folder with the official SQuAD/RACE files>")
    return Path(data_dir).expanduser()


def read_squad(path: Path, task: Task) -> list[SpanExample]:
    """The official SQuAD JSON (data > paragraphs > qas), every gold answer kept: dev scores against all of them."""
    data = _json(path, f"the official SQuAD layout <data_dir>/{{{','.join(task.files)}}}")
    examples = []
    for a, article in enumerate(_get(data, "data", str(path))):
        for p, paragraph in enumerate(_get(article, "paragraphs", f"{path}: article {a}")):
            context = _get(paragraph, "context", f"{path}: article {a} paragraph {p}")
            for q, qa in enumerate(_get(paragraph, "qas", f"{path}: article {a} paragraph {p}")):
                examples.append(_span_example(qa, context, str(path), f"article {a} paragraph {p} question {q}"))
    return examples


def _span_example(qa, context: str, source: str, position: str) -> SpanExample:
    """Unanswerable (SQuAD 2.0's is_impossible) questions keep no answer: their plausible_answers are wrong ones."""
    id_ = _get(qa, "id", f"{source}: {position}")
    where = f"{source}: question {id_}"
    question, answers = _get(qa, "question", where), _get(qa, "answers", where)
    if qa.get("is_impossible"):
        return SpanExample(id_, question, context, ())
    if not answers:
        raise ConfigError(f"{where}: no answers and not is_impossible")
    return SpanExample(id_, question, context, tuple(_answer(answer, context, where) for answer in answers))


def _answer(answer, context: str, where: str) -> Answer:
    """An offset that misses its text would train the model on the wrong span, silently."""
    text, start = _get(answer, "text", where), _get(answer, "answer_start", where)
    if not isinstance(start, int) or start < 0 or context[start:start + len(text)] != text:
        raise ConfigError(f"{where}: answer {text!r} is not at answer_start {start} of its context")
    return Answer(text, start)


def read_race(folder: Path, task: Task) -> list[ChoiceExample]:
    """The official RACE folder: one JSON file per article with its questions in parallel lists; the level is the
    folder's (the file does not say)."""
    examples = []
    for level in LEVELS:
        files = sorted((folder / level).glob("*.txt"))
        if not files:
            raise ConfigError(f"rc: missing files {folder / level}/*.txt (expected {_RACE_LAYOUT})")
        for path in files:
            examples += _race_article(_json(path, _RACE_LAYOUT), path, level)
    return examples


def _race_article(data, path: Path, level: str) -> list[ChoiceExample]:
    article, file_id = _get(data, "article", str(path)), _get(data, "id", str(path))
    lists = {key: _get(data, key, str(path)) for key in ("questions", "options", "answers")}
    counts = ", ".join(f"{len(v)} {k}" for k, v in lists.items())
    examples = []
    for i in range(max(map(len, lists.values()))):
        where = f"{path}: question {i}"
        missing = [key for key, values in lists.items() if i >= len(values)]
        if missing:
            raise ConfigError(f"{where}: no {missing[0]} entry ({counts})")
        examples.append(_choice(f"{file_id}-{i}", article, lists["questions"][i], lists["options"][i],
                                lists["answers"][i], level, where))
    return examples


def _choice(id_: str, article: str, question: str, options, answer, level: str, where: str) -> ChoiceExample:
    if not isinstance(options, list) or len(options) != len(LETTERS):
        raise ConfigError(f"{where}: {len(options) if isinstance(options, list) else 'no list of'} options, need 4")
    if answer not in LETTERS:
        raise ConfigError(f"{where}: answer {answer!r} is not one of {', '.join(LETTERS)}")
    return ChoiceExample(id_, article, question, tuple(options), LETTERS.index(answer), level)


def _json(path: Path, layout: str):
    if not path.is_file():
        raise ConfigError(f"rc: missing file {path} (expected {layout})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}:{err.colno}: malformed JSON ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None


def _get(record, key: str, where: str):
    if not isinstance(record, dict) or key not in record:
        raise ConfigError(f"{where}: no key {key!r}")
    return record[key]


def _hub(task: Task) -> dict[str, list]:
    """The Hub copies of the official files; fails fast offline, where the datasets library would retry for minutes.
    Rows pass the same checks as the files."""
    probe_hub(task.hub, "rc=hub", "offline, use rc=synthetic (built in) or rc=files "
                                  "rc.data_dir=<folder with the official SQuAD/RACE files>")
    import datasets
    out = {}
    for split, hub_split in zip(SPLITS, ("train", "validation")):
        rows = datasets.load_dataset(task.hub, task.hub_config, split=hub_split)
        source = f"{task.hub} {hub_split}"
        out[split] = _hub_spans(rows, source) if task.kind == "span" else _hub_choices(rows, source)
    return out


def _hub_spans(rows, source: str) -> list[SpanExample]:
    """rajpurkar/squad(_v2) rows: answers as {text: [...], answer_start: [...]}, empty lists when unanswerable."""
    def qa(row):
        texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
        return {"id": row["id"], "question": row["question"], "answers": answers, "is_impossible": not answers}

    return [_span_example(qa(row), row["context"], source, f"row {i}") for i, row in enumerate(rows)]


def _hub_choices(rows, source: str) -> list[ChoiceExample]:
    """ehovy/race rows: one per question, example_id the article's file id ("high123.txt"), which names the level;
    a question's index is its place among its article's rows, so ids match the files' ones."""
    seen: dict[str, int] = {}
    examples = []
    for row in rows:
        file_id = row["example_id"]
        index = seen[file_id] = seen.get(file_id, -1) + 1
        level = next((level for level in LEVELS if file_id.startswith(level)), None)
        where = f"{source}: question {file_id}-{index}"
        if level is None:
            raise ConfigError(f"{where}: example_id does not start with {' or '.join(LEVELS)}")
        examples.append(_choice(f"{file_id}-{index}", row["article"], row["question"], list(row["options"]),
                                row["answer"], level, where))
    return examples
