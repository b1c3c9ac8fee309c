"""GLUE-shaped tasks over the synthetic pretraining language, so the default grid ends with a GLUE-style
table offline. Each label depends on knowledge a masked LM picks up from the corpus (agreement, word
polarity, synonyms and hypernyms), which a model that starts from random weights must learn from a few
hundred labelled examples.

Shapes: cola (acceptability), sst2 (sentiment; its dev set words polarity in synonyms training never
shows), mrpc (paraphrase), rte and mnli (entailment; mnli's mismatched dev set is drawn from a topic its
training set never shows) and stsb (similarity, 0-5). Each maker draws one example: (rng, topic, dev).
"""

import random
from dataclasses import replace

from ablations.data.synthetic import PRESENT, Language, Sentence
from ablations.glue.tasks import Example

_language = Language(0)


def _topics(num_topics: int) -> tuple[str, ...]:
    return _language.topics[:num_topics]


def _render(words: list[str]) -> str:
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _rewrite(s: Sentence, word) -> Sentence:
    """s with `word` applied to every lemma (names stay)."""
    def phrase(p):
        if p is None:
            return None
        return replace(p, lemma=p.lemma if p.proper else word(p.lemma), adjectives=tuple(map(word, p.adjectives)))

    return replace(s, subject=phrase(s.subject), obj=phrase(s.obj), relative_obj=phrase(s.relative_obj),
                   instrument=phrase(s.instrument), verb=word(s.verb),
                   **{k: word(getattr(s, k)) for k in ("complement", "relative_verb", "adverb")
                      if getattr(s, k) is not None})


def _synonym_swaps(s: Sentence, rng: random.Random) -> Sentence | None:
    """The same meaning in other words: every word with a synonym is swapped with probability 1/2 (at least
    one). None when the sentence has no word with a synonym."""
    syn = _language.synonyms
    for _ in range(8):
        other = _rewrite(s, lambda w: rng.choice(syn[w]) if w in syn and rng.random() < 0.5 else w)
        if other.text() != s.text():
            return other
    return None


def _synonym_set(word: str) -> tuple[str, ...]:
    return tuple(sorted((word, *_language.synonyms.get(word, ()))))


def _generalise(s: Sentence) -> Sentence | None:
    """Entailed by s: the subject's noun replaced by its hypernym (a poodle barks, so a dog barks)."""
    parent = _language.hypernyms.get(s.subject.lemma)
    if s.subject.proper or parent is None or s.negated or s.subject.determiner not in ("the", "a", ""):
        return None
    return replace(s, subject=replace(s.subject, lemma=parent))


def _content(s: Sentence) -> set[str]:
    """Lemmas that carry meaning, each synonym set counted as one word."""
    lemmas = {s.verb, s.complement, s.relative_verb, s.adverb, s.place}
    for p in (s.subject, s.obj, s.relative_obj, s.instrument):
        if p is not None:
            lemmas |= {p.lemma, *p.adjectives}
    return {_synonym_set(w)[0] for w in lemmas if w is not None}


def _cola(rng, topic, dev):
    s = _language.sentence(rng, topic, tense=PRESENT, negated=False)
    if rng.random() < 0.5:
        return Example(s.text(), None, 1)
    words = s.words()
    if not s.subject.proper:  # break subject-verb agreement: the subject changes number, the verb does not
        flipped = replace(s.subject, plural=not s.subject.plural, determiner=s.subject.determiner and "the")
        subject = len(s.subject.words())
        return Example(_render(flipped.words() + words[subject:]), None, 0)
    i = rng.randrange(1, len(words) - 1)  # break word order
    words[i], words[i + 1] = words[i + 1], words[i]
    return Example(_render(words), None, 0)


def _sst2(rng, topic, dev):
    """Training sentences use the first word of every synonym set, dev sentences another one: a model must
    know from pretraining that `awful` means what `terrible` means."""
    label = rng.randrange(2)
    s = _language.sentence(rng, topic, sentiment=1 if label else -1)
    s = _rewrite(s, lambda w: rng.choice(_synonym_set(w)[1:] or (w,)) if dev else _synonym_set(w)[0])
    return Example(s.text(), None, label)


def _mrpc(rng, topic, dev):
    s = _language.sentence(rng, topic)
    if rng.random() < 0.5 and (other := _synonym_swaps(s, rng)) is not None:
        return Example(s.text(), other.text(), 1)
    near = (replace(s, negated=not s.negated) if rng.random() < 0.5
            else _language.sentence(rng, topic, subject=s.subject.lemma if not s.subject.proper else None))
    return Example(s.text(), near.text(), 0)


MNLI_LABELS = ("entailment", "neutral", "contradiction")


def _mnli(rng, topic, dev, label=None):
    s = _language.sentence(rng, topic)
    label = label or rng.choice(MNLI_LABELS)
    if label == "entailment":
        other = _generalise(s) if rng.random() < 0.5 else None
        other = other or _synonym_swaps(s, rng) or s
    elif label == "contradiction":
        other = replace(s, negated=not s.negated)
    else:
        other = _language.sentence(rng, topic, tense=s.tense)
    return Example(s.text(), other.text(), MNLI_LABELS.index(label))


def _rte(rng, topic, dev):
    """Half entailment (0), half not_entailment (1: contradiction or neutral), as GLUE's RTE labels."""
    label = "entailment" if rng.random() < 0.5 else rng.choice(MNLI_LABELS[1:])
    premise, hypothesis, _ = _mnli(rng, topic, dev, label)
    return Example(premise, hypothesis, int(label != "entailment"))


def _stsb(rng, topic, dev):
    s = _language.sentence(rng, topic)
    kind = rng.randrange(4)
    other = ((_synonym_swaps(s, rng) or s) if kind == 0 else replace(s, negated=not s.negated) if kind == 1 else
             _language.sentence(rng, topic, subject=None if s.subject.proper else s.subject.lemma) if kind == 2
             else _language.sentence(rng, topic))
    a, b = _content(s), _content(other)
    score = 5 * len(a & b) / len(a | b) - (s.negated != other.negated)
    return Example(s.text(), other.text(), round(max(score, 0.0), 2))


TASKS = {"cola": _cola, "sst2": _sst2, "mrpc": _mrpc, "stsb": _stsb, "mnli": _mnli, "rte": _rte}


def task(name: str, train_size: int, dev_size: int, num_topics: int, seed: int = 0) -> dict[str, list[Example]]:
    """{"train": ..., "dev": ...} (mnli: dev_matched and dev_mismatched). Topics cycle across examples; mnli
    trains and tests (matched) on all topics but the last, which is its mismatched dev set."""
    topics = _topics(num_topics)
    make = TASKS[name]

    def draw(split, n, topics):
        rng = random.Random(f"synthetic-glue:{name}:{split}:{seed}")
        return [make(rng, topics[i % len(topics)], split != "train") for i in range(n)]

    if name != "mnli":
        return {"train": draw("train", train_size, topics), "dev": draw("dev", dev_size, topics)}
    seen = topics[:-1] or topics
    return {"train": draw("train", train_size, seen), "dev_matched": draw("dev", dev_size, seen),
            "dev_mismatched": draw("dev_mismatched", dev_size, topics[-1:])}

