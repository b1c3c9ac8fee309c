"""SQuAD- and RACE-shaped tasks over the synthetic pretraining language, so the reading-comprehension stage runs
offline. A context is a document of the language: a recurring cast and recurring props, so a name or a noun of
the question turns up in several sentences and only the question's other arguments pick the one it asks about.
Where the verb has a synonym, half the questions use it ("Who sliced the onion?" over "Mira chopped the onion"),
which a pretrained model knows and a model from random weights must learn from the examples.

Contexts are short: a SQuAD context (2-4 sentences, about 30 tokens) and its question fit one window of the
default cell's 64-token pretraining length, as do most RACE articles with a question and an option (a "middle"
one has 2-4 sentences, a "high" one 4-6 and may be cut); with longer ones the answer sat in another window or was
cut off, and a 2-layer model learned almost no spans in a CPU protocol's few hundred steps.

Each clause of the document is read back as a fact (verb, subject, object, place, instrument) with the character
span of each argument in the context; a question names the verb and some arguments of one fact and asks for
another, and is kept only when exactly one fact of the document fits it (answerable) or none does (unanswerable:
SQuAD 2.0's third of questions about an event with the document's own words that the document does not tell).
"""

import random
from typing import NamedTuple

from ablations.data.synthetic import COPULAR, PAST, Language, NounPhrase, Sentence, past_form, plural_form, \
    third_person_form
from ablations.rc.tasks import Answer, ChoiceExample, SpanExample

_language = Language(0)
_HYPERNYMS = frozenset(_language.hypernyms.values())

QUESTIONS_PER_DOCUMENT = 3
DRAWS = 4
UNANSWERABLE_SHARE = 1 / 3
ROLES = ("subject", "obj", "place", "instrument")
_NAMED = {"subject": ("obj",), "obj": ("subject",), "place": ("subject", "obj"), "instrument": ("subject", "obj")}
_SENTENCES = {"squad": (2, 4), "middle": (2, 4), "high": (4, 6)}  # sentences a document


class Fact(NamedTuple):
    """One clause: a sentence's main clause, or the relative clause on its subject ("the chef who washes the pot")."""
    verb: str
    tense: str
    subject: NounPhrase
    obj: NounPhrase | None
    place: str | None              # "in the pantry"
    instrument: NounPhrase | None
    negated: bool
    spans: dict[str, tuple[int, int]]  # role -> its (start, end) characters in the context


class Question(NamedTuple):
    fact: Fact               # the event asked about (for an unanswerable question, one the document does not tell)
    asked: str               # the role that answers it
    named: tuple[str, ...]   # the roles the question names


def _canonical(word: str) -> str:
    return min((word, *_language.synonyms.get(word, ())))


def _same(a: NounPhrase | str | None, b: NounPhrase | str | None) -> bool:
    """Could a and b be the same thing: equal, synonyms, or one a hypernym of the other (the onion, the vegetable)."""
    if a is None or b is None:
        return False
    if isinstance(a, str):
        return a == b
    return (_canonical(a.lemma) == _canonical(b.lemma) or a.lemma in _language.ancestors(b.lemma)
            or b.lemma in _language.ancestors(a.lemma))


def _phrase(p: NounPhrase) -> str:
    """A noun phrase as a question or an option says it: definite and bare, so it never copies the context's words."""
    return p.lemma if p.proper else "the " + (plural_form(p.lemma) if p.plural else p.lemma)


# -- reading a document back as facts ---------------------------------------------------------------------------


def _read(sentences: tuple[Sentence, ...]) -> tuple[str, list[Fact]]:
    """The context and the facts it tells, with their arguments' character spans."""
    texts, facts, offset = [], [], 0
    for sentence in sentences:
        text = sentence.text()
        facts += _facts(sentence, text, offset)
        texts.append(text)
        offset += len(text) + 1
    return " ".join(texts), facts


def _facts(s: Sentence, text: str, offset: int) -> list[Fact]:
    """Copular sentences tell no event. Spans come from the word layout of Sentence.words(), checked against the
    rendered text."""
    if s.template == COPULAR:
        return []
    layout = [(None, len(s.marker.split()) if s.marker else 0), ("subject", len(s.subject.words()))]
    if s.relative_verb is not None:
        layout += [(None, 2), ("relative_obj", len(s.relative_obj.words()))]
    layout += [(None, 3 if s.negated else 1), ("obj", len(s.obj.words()) if s.obj else 0), (None, s.adverb is not None),
               (None, s.instrument is not None), ("instrument", len(s.instrument.words()) if s.instrument else 0),
               ("place", 3 if s.place else 0)]
    spans = _spans(s, text, offset, layout)
    place = f"{s.preposition} the {s.place}" if s.place else None
    facts = [Fact(s.verb, s.tense, s.subject, s.obj, place, s.instrument, s.negated,
                  {role: spans[role] for role in ROLES if role in spans})]
    if s.relative_verb is not None:
        facts.append(Fact(s.relative_verb, s.tense, s.subject, s.relative_obj, None, None, False,
                          {"subject": spans["subject"], "obj": spans["relative_obj"]}))
    return facts


def _spans(s: Sentence, text: str, offset: int, layout: list[tuple[str | None, int]]) -> dict[str, tuple[int, int]]:
    words = s.words()
    if s.marker:
        words[len(s.marker.split()) - 1] += ","  # as Sentence.text() writes it
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(word) + 1)
    spans, index = {}, 0
    for role, count in layout:
        if role is not None and count:
            start, end = starts[index], starts[index + count] - 1
            assert text[start:end].lower() == " ".join(words[index:index + count]).lower(), (text, role)
            spans[role] = (offset + start, offset + end)
        index += count
    return spans


# -- questions ----------------------------------------------------------------------------------------------------


def _fits(facts: list[Fact], question: Question) -> list[Fact]:
    """The told events that answer the question: same verb (up to synonyms), the named arguments, the asked one."""
    q = question.fact
    return [f for f in facts if not f.negated and _canonical(f.verb) == _canonical(q.verb)
            and getattr(f, question.asked) is not None
            and all(_same(getattr(f, role), getattr(q, role)) for role in question.named)]


def _answerable(rng: random.Random, facts: list[Fact]) -> Question | None:
    """A question about a told event that names as few arguments as pick it out; None when none picks it out.
    Events with one noun twice ("the eel catches the salty eel") make odd questions and are skipped."""
    told = [f for f in facts if not f.negated and not _same(f.subject, f.obj)]
    if not told:
        return None
    fact = rng.choice(told)
    asked = rng.choice([role for role in ROLES if getattr(fact, role) is not None])
    named = tuple(role for role in _NAMED[asked] if getattr(fact, role) is not None)
    extras = [role for role in ("place", "instrument") if role != asked and getattr(fact, role) is not None]
    for extra in (None, *extras):
        named += (extra,) if extra else ()
        if len(_fits(facts, Question(fact, asked, named))) == 1:
            return Question(fact._replace(verb=_reword(rng, fact.verb)), asked, named)
    return None


def _unanswerable(rng: random.Random, facts: list[Fact]) -> Question | None:
    """A question in the document's words about an event it does not tell: an argument or the verb swapped for
    another of the document's, a negated event ("Mira did not chop the onion"), or a place or instrument the
    document leaves out. None when the draw turns out answerable."""
    if not facts:
        return None
    fact = rng.choice(facts)
    asked = rng.choice(ROLES if fact.obj is not None else ("subject", "place"))
    named = tuple(role for role in _NAMED[asked] if getattr(fact, role) is not None)
    if not fact.negated and getattr(fact, asked) is not None:
        fact = _swap(rng, facts, fact, rng.choice(("verb", *named)))
    question = fact and Question(fact._replace(verb=_reword(rng, fact.verb)), asked, named)
    return question if question and not _fits(facts, question) else None


def _swap(rng: random.Random, facts: list[Fact], fact: Fact, role: str) -> Fact | None:
    if role == "verb":
        verbs = [f.verb for f in facts
                 if (f.obj is None) == (fact.obj is None) and _canonical(f.verb) != _canonical(fact.verb)]
        return fact._replace(verb=rng.choice(verbs)) if verbs else None
    old = getattr(fact, role)
    phrases = [p for f in facts for p in (f.subject, f.obj, f.instrument)
               if p is not None and (p.cls == "person") == (old.cls == "person") and not _same(p, old)]
    return fact._replace(**{role: rng.choice(phrases)}) if phrases else None


def _reword(rng: random.Random, verb: str) -> str:
    """Half the time a synonym: matching the text's word is not enough, knowing the language is."""
    synonyms = _language.synonyms.get(verb, ())
    return rng.choice(synonyms) if synonyms and rng.random() < 0.5 else verb


def _question_text(question: Question) -> str:
    q, asked, named = question
    tail = [_phrase(q.obj)] if "obj" in named else []
    tail += ["with", _phrase(q.instrument)] if "instrument" in named else []
    tail += [q.place] if "place" in named else []
    if asked == "subject":
        verb = past_form(q.verb) if q.tense == PAST else third_person_form(q.verb)
        return " ".join(["Who" if q.subject.cls == "person" else "What", verb, *tail]) + "?"
    wh = "Where" if asked == "place" else "Who" if asked == "obj" and q.obj.cls == "person" else "What"
    do = "did" if q.tense == PAST else "do" if q.subject.plural else "does"
    return " ".join([wh, do, _phrase(q.subject), q.verb, *tail, *(["with"] if asked == "instrument" else [])]) + "?"


# -- tasks --------------------------------------------------------------------------------------------------------


def _document(rng: random.Random, topics: tuple[str, ...], kind: str):
    return _language.document(rng, rng.randint(*_SENTENCES[kind]), topics)


def _squad(rng: random.Random, topics: tuple[str, ...], unanswerable: bool) -> tuple[str, list]:
    """A context and up to QUESTIONS_PER_DOCUMENT distinct (question, answers) pairs about it."""
    context, facts = _read(_document(rng, topics, "squad").sentences)
    pairs, asked = [], set()
    for _ in range(QUESTIONS_PER_DOCUMENT):
        impossible = unanswerable and rng.random() < UNANSWERABLE_SHARE
        question = _new(rng, facts, asked, _unanswerable if impossible else _answerable)
        if question:
            pairs.append((_question_text(question), () if impossible else (_answer(context, question),)))
    return context, pairs


def _new(rng: random.Random, facts: list[Fact], asked: set[str], draw) -> Question | None:
    """A question not yet asked about the document, in up to DRAWS tries: a short document fails many draws (few
    events to swap in), and without retries its unanswerable share would fall below a third."""
    for _ in range(DRAWS):
        question = draw(rng, facts)
        if question and _question_text(question) not in asked:
            asked.add(_question_text(question))
            return question
    return None


def _answer(context: str, question: Question) -> Answer:
    """The argument as the context writes it ("Three hungry cats"); _spans checked it against the sentence's words."""
    start, end = question.fact.spans[question.asked]
    return Answer(context[start:end], start)


def _race(rng: random.Random, topics: tuple[str, ...]) -> tuple[str, str, list]:
    """An article (a long one for "high", a short one for "middle") and (question, options, label) triples."""
    level = "high" if rng.random() < 0.5 else "middle"
    document = _document(rng, topics, level)
    article, facts = _read(document.sentences)
    triples, asked = [], set()
    for _ in range(QUESTIONS_PER_DOCUMENT):
        question = _new(rng, facts, asked, _contested)
        if question:
            triples.append((_question_text(question), *_options(rng, facts, document.topic, question)))
    return article, level, triples


def _contested(rng: random.Random, facts: list[Fact]) -> Question | None:
    """An answerable question whose answer is not the only argument of its kind the article tells, so the right
    option is never the one option the article names."""
    question = _answerable(rng, facts)
    if question is None:
        return None
    right = getattr(question.fact, question.asked)
    if question.asked == "place":
        rivals = [f.place for f in facts if f.place and f.place != right]
    else:
        rivals = [p for f in facts for p in (f.subject, f.obj, f.instrument) if p is not None and _rival(p, right)]
    return question if rivals else None


def _rival(p: NounPhrase, right: NounPhrase) -> bool:
    """A wrong option of the right one's kind: a person for a person, never a hypernym, never the same thing."""
    return (p.cls == "person") == (right.cls == "person") and p.lemma not in _HYPERNYMS and not _same(p, right)


def _options(rng: random.Random, facts: list[Fact], topic: str, question: Question) -> tuple[tuple[str, ...], int]:
    """The right argument and three wrong ones of its kind, taken from the article first (so spotting a word of
    the article is no help), then from the topic's words."""
    right = getattr(question.fact, question.asked)
    if question.asked == "place":
        told = list({f.place: None for f in facts if f.place and f.place != right})
        spare = [f"{preposition} the {place}" for preposition, place in _language.lexicon[topic].places]
        spare = [w for w in spare if w != right and w not in told]
        rng.shuffle(told)
        rng.shuffle(spare)
        options = [right, *(told + spare)[:3]]
    else:
        options = [_phrase(p) for p in [right, *_distractors(rng, facts, topic, right)]]
    label_text = options[0]
    rng.shuffle(options)
    assert len(set(options)) == 4, options
    return tuple(options), options.index(label_text)


def _distractors(rng: random.Random, facts: list[Fact], topic: str, right: NounPhrase) -> list[NounPhrase]:
    lexicon = _language.lexicon[topic]
    told = list({p: None for f in facts for p in (f.subject, f.obj, f.instrument) if p is not None})
    spare = [NounPhrase(name, "person", determiner=None) for name in lexicon.names]
    spare += [NounPhrase(noun.lemma, noun.cls) for noun in lexicon.nouns]
    rng.shuffle(told)
    rng.shuffle(spare)
    chosen: list[NounPhrase] = []
    for p in sorted(told, key=lambda p: p.cls != right.cls) + sorted(spare, key=lambda p: p.cls != right.cls):
        if _rival(p, right) and not any(_same(p, q) for q in chosen):
            chosen.append(p)
            if len(chosen) == 3:
                break
    return chosen


def task(name: str, train_size: int, dev_size: int, num_topics: int, seed: int = 0) -> dict[str, list]:
    """{"train": ..., "dev": ...}, train_size and dev_size examples; no dev document is a training one."""
    topics = _language.topics[:num_topics]
    train = _split(name, "train", train_size, topics, seed, frozenset())
    seen = frozenset(e.context if isinstance(e, SpanExample) else e.article for e in train)
    return {"train": train, "dev": _split(name, "dev", dev_size, topics, seed, seen)}


def _split(name: str, split: str, size: int, topics: tuple[str, ...], seed: int, seen: frozenset[str]) -> list:
    rng = random.Random(f"synthetic-rc:{name}:{split}:{seed}")
    examples: list = []
    document = 0
    while len(examples) < size:
        document += 1
        if name == "race":
            article, level, triples = _race(rng, topics)
            made = [ChoiceExample(f"{split}-{document}-{i}", article, q, options, label, level)
                    for i, (q, options, label) in enumerate(triples)]
        else:
            article, pairs = _squad(rng, topics, unanswerable=name == "squad20")
            made = [SpanExample(f"{split}-{document}-{i}", q, article, answers) for i, (q, answers) in enumerate(pairs)]
        if article not in seen:
            examples += made[:size - len(examples)]
    return examples
