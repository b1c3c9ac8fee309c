"""The embedded synthetic language: determinism, grammar, topic/sentiment labels and corpus statistics.

Text-level checks tokenise the rendered sentences and look words up in form tables built from the
lexicon, so they test what the model will actually read, not only the structured fields.
"""

import math
import random
import re
from collections import Counter
from dataclasses import replace

import pytest

from ablations.data.synthetic import (
    CLOSING_MARKERS,
    COPULAR,
    INTRANSITIVE,
    MIDDLE_MARKERS,
    OPENING_MARKERS,
    PAST,
    PLURAL_DETERMINERS,
    PRESENT,
    RELATIVE,
    SINGULAR_DETERMINERS,
    TEMPLATES,
    TIME_ADVERBIALS,
    TRANSITIVE,
    Document,
    Language,
    Sentence,
    generate_documents,
    indefinite_article,
    past_form,
    plural_form,
    third_person_form,
)

LANGUAGE = Language(0)
DOCUMENTS = generate_documents(300, seed=0)
SENTENCES = [s for d in DOCUMENTS for s in d.sentences]


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def phrases(sentence: Sentence):
    return [p for p in (sentence.subject, sentence.relative_obj, sentence.obj, sentence.instrument) if p]


def content_lemmas(sentence: Sentence) -> set[str]:
    lemmas = {p.lemma for p in phrases(sentence) if not p.proper}
    lemmas |= {a for p in phrases(sentence) for a in p.adjectives}
    lemmas |= {sentence.verb, sentence.relative_verb, sentence.complement, sentence.adverb, sentence.place}
    return lemmas - {None, "be"}


def all_verbs():
    return {v.lemma for lex in LANGUAGE.lexicon.values() for v in lex.verbs + lex.intransitive_verbs}


def all_nouns():
    return set(LANGUAGE.hypernyms) | set(LANGUAGE.hypernyms.values())


THIRD_PERSON = {third_person_form(v) for v in all_verbs()}
PAST_FORMS = {past_form(v) for v in all_verbs()}
SINGULAR_NOUNS = all_nouns()
PLURAL_NOUNS = {plural_form(n) for n in all_nouns()}
ADJECTIVES = {a.lemma for lex in LANGUAGE.lexicon.values() for a in lex.adjectives}
NAMES = {n.lower() for lex in LANGUAGE.lexicon.values() for n in lex.names}
POLARITY_OF_FORM = {
    form: polarity
    for word, polarity in LANGUAGE.polarity.items()
    for form in {word, third_person_form(word), past_form(word)}
}


# -- determinism ----------------------------------------------------------------------------------------------


def test_same_seed_same_documents_and_different_seed_different_documents():
    first, again, other = generate_documents(40, 3), generate_documents(40, 3), generate_documents(40, 4)
    assert first == again
    assert [d.texts() for d in first] == [d.texts() for d in again]
    differing = sum(a.texts() != b.texts() for a, b in zip(first, other))
    assert differing >= 38


def test_stream_is_prefix_stable():
    assert generate_documents(100, 7)[:50] == generate_documents(50, 7)
    assert generate_documents(0, 7) == []


def test_generation_ignores_and_preserves_global_random_state():
    random.seed(123)
    state = random.getstate()
    docs = generate_documents(20, 1)
    assert random.getstate() == state
    random.seed(999)
    assert generate_documents(20, 1) == docs


def test_language_seed_fixes_frequencies_but_not_vocabulary():
    assert Language(5).lexicon == Language(5).lexicon
    a, b = Language(0).lexicon["kitchen"], Language(1).lexicon["kitchen"]
    assert a.nouns != b.nouns  # frequency ranks differ...
    assert set(a.nouns) == set(b.nouns)  # ...over the same words
    assert Language(0).vocabulary == Language(1).vocabulary


def test_sentence_is_a_function_of_its_rng():
    one = [LANGUAGE.sentence(random.Random(11), "forest") for _ in range(3)]
    assert one[0] == one[1] == one[2]


def test_documents_respect_sentence_count_bounds():
    docs = generate_documents(200, 2, min_sentences=2, max_sentences=5)
    counts = Counter(len(d.sentences) for d in docs)
    assert set(counts) == {2, 3, 4, 5}
    with pytest.raises(ValueError):
        generate_documents(3, 0, min_sentences=5, max_sentences=4)


# -- lexicon --------------------------------------------------------------------------------------------------


def test_lexicon_size_and_topics():
    assert 8 <= len(LANGUAGE.topics) <= 12
    for topic in LANGUAGE.topics:
        lexicon = LANGUAGE.lexicon[topic]
        assert len(lexicon.nouns) >= 12 and len(lexicon.names) >= 4 and len(lexicon.places) >= 3
    topic_specific = {
        w
        for lex in LANGUAGE.lexicon.values()
        for w in [n.lemma for n in lex.nouns] + [v.lemma for v in lex.verbs] + [a.lemma for a in lex.adjectives]
    } - LANGUAGE.shared_words
    assert len(topic_specific) >= 300


def test_word_classes_do_not_share_surface_forms():
    """Text-level grammar tests below rely on every surface form having one part of speech."""
    verb_forms = set(all_verbs()) | THIRD_PERSON | PAST_FORMS
    classes = {
        "nouns": SINGULAR_NOUNS | PLURAL_NOUNS,
        "verbs": verb_forms,
        "adjectives": ADJECTIVES,
        "adverbs": set(LANGUAGE.adverbs),
        "names": NAMES,
        "function": SINGULAR_DETERMINERS | PLURAL_DETERMINERS | {"an", "is", "are", "was", "were", "not"},
    }
    names = list(classes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not classes[a] & classes[b], (a, b, classes[a] & classes[b])
    assert not SINGULAR_NOUNS & PLURAL_NOUNS


def test_synonyms_are_symmetric_and_interchangeable():
    assert len(LANGUAGE.synonyms) >= 40
    entries = {}
    for lex in LANGUAGE.lexicon.values():
        for item in lex.verbs + lex.intransitive_verbs + lex.adjectives:
            entries[item.lemma] = item
    for word, others in LANGUAGE.synonyms.items():
        for other in others:
            assert word in LANGUAGE.synonyms[other]
            assert LANGUAGE.polarity.get(word, 0) == LANGUAGE.polarity.get(other, 0)
            if word in entries:  # same selectional restrictions, only the spelling differs
                a, b = entries[word], entries[other]
                assert (a.__class__, vars(a) | {"lemma": ""}) == (b.__class__, vars(b) | {"lemma": ""})
    assert "large" in LANGUAGE.synonyms["big"]
    assert "slice" in LANGUAGE.synonyms["chop"]


def test_hypernym_chains_end_at_the_noun_class():
    assert LANGUAGE.ancestors("poodle") == ("dog", "animal")
    assert LANGUAGE.ancestors("onion") == ("vegetable", "food")
    for lex in LANGUAGE.lexicon.values():
        for noun in lex.nouns:
            chain = LANGUAGE.ancestors(noun.lemma)
            assert chain and chain[0] == noun.hypernym and chain[-1] == noun.cls
            assert len(chain) == len(set(chain))


def test_morphology():
    assert [plural_form(w) for w in ("onion", "knife", "berry", "bench", "child", "goose")] == [
        "onions", "knives", "berries", "benches", "children", "geese"]
    assert [third_person_form(w) for w in ("chop", "wash", "hurry", "play", "fix")] == [
        "chops", "washes", "hurries", "plays", "fixes"]
    assert [past_form(w) for w in ("chop", "stir", "bake", "carry", "gather", "follow", "see", "play")] == [
        "chopped", "stirred", "baked", "carried", "gathered", "followed", "saw", "played"]
    assert [indefinite_article(w) for w in ("onion", "knife", "honest", "old")] == ["an", "a", "an", "an"]


# -- grammar --------------------------------------------------------------------------------------------------


def test_every_rendered_word_is_in_the_vocabulary_and_text_is_well_formed():
    for sentence in SENTENCES:
        text = sentence.text()
        assert text[0].isupper() and text.endswith(".") and ".." not in text
        assert set(tokens(text)) <= LANGUAGE.vocabulary, text
        if sentence.marker:
            assert text.lower().startswith(sentence.marker + ", ")


def test_sentence_lengths():
    lengths = [len(tokens(s.text())) for s in SENTENCES]
    assert all(6 <= n <= 20 for n in lengths)
    assert 7 <= sum(lengths) / len(lengths) <= 12
    assert len(set(lengths)) >= 8


def test_subject_verb_agreement_in_fields_and_text():
    checked = Counter()
    for sentence in SENTENCES:
        words = tokens(sentence.text())
        finite = [w for w in words if w in THIRD_PERSON | {"is", "does"}]
        if sentence.tense == PRESENT and sentence.plural:
            assert not finite, sentence.text()  # "the cooks chop", never "the cooks chops"
            checked["plural"] += 1
        elif sentence.tense == PRESENT:
            # main verb, plus the relative clause's verb which agrees with the same subject
            assert len(finite) == 1 + (sentence.template == RELATIVE), sentence.text()
            checked["singular"] += 1
        else:
            assert not finite
        if sentence.verb == "be" and sentence.tense == PAST:
            assert ("were" if sentence.plural else "was") in words
            assert ("was" if sentence.plural else "were") not in words
        assert sentence.subject.plural == sentence.plural
        if sentence.subject.proper:
            assert not sentence.plural
    assert checked["plural"] > 50 and checked["singular"] > 50


def test_determiner_noun_agreement_in_fields_and_text():
    for sentence in SENTENCES:
        for phrase in phrases(sentence):
            if phrase.proper:
                continue
            allowed = PLURAL_DETERMINERS | {"the", ""} if phrase.plural else SINGULAR_DETERMINERS
            assert phrase.determiner in allowed
        words = tokens(replace(sentence, time=None).text())  # "every day" is an adverbial, not a noun phrase
        for i, word in enumerate(words):
            if word not in {"a", "an", "this", "every", "these", "those", "some", "two", "three", "many"}:
                continue
            j = i + 1
            while words[j] in ADJECTIVES:
                j += 1
            expected = SINGULAR_NOUNS if word in {"a", "an", "this", "every"} else PLURAL_NOUNS
            assert words[j] in expected, sentence.text()
            if word in {"a", "an"}:
                assert (word == "an") == (words[i + 1][0] in "aeiou" or words[i + 1] == "honest")


def test_verbs_and_adjectives_select_fitting_classes():
    for sentence in SENTENCES:
        lexicon = LANGUAGE.lexicon[sentence.topic]
        verbs = {v.lemma: v for v in lexicon.verbs}
        intransitives = {v.lemma: v for v in lexicon.intransitive_verbs}
        adjectives = {a.lemma: a for a in lexicon.adjectives}
        if sentence.template in (TRANSITIVE, RELATIVE):
            verb = verbs[sentence.verb]
            assert sentence.subject.cls in verb.subjects and verb.takes(sentence.obj.cls)
        if sentence.template == RELATIVE:
            verb = verbs[sentence.relative_verb]
            assert sentence.subject.cls in verb.subjects and verb.takes(sentence.relative_obj.cls)
        if sentence.template == INTRANSITIVE:
            assert sentence.subject.cls in intransitives[sentence.verb].subjects
        if sentence.template == COPULAR:
            assert adjectives[sentence.complement].fits(sentence.subject.cls)
        for phrase in phrases(sentence):
            assert all(adjectives[a].fits(phrase.cls) for a in phrase.adjectives)
            assert phrase.cls == (LANGUAGE.noun_class(phrase.lemma) if not phrase.proper else "person")
        if sentence.instrument is not None:
            assert sentence.instrument.cls == "tool"


def test_time_adverbials_agree_with_tense():
    timed = [s for s in SENTENCES if s.time]
    assert len(timed) > 100
    assert all(s.time in TIME_ADVERBIALS[s.tense] for s in timed)


# -- topics, documents and coherence --------------------------------------------------------------------------


def test_every_document_sentence_stays_on_the_document_topic():
    for document in DOCUMENTS:
        lexicon = LANGUAGE.lexicon[document.topic]
        own = {n.lemma for n in lexicon.nouns} | {v.lemma for v in lexicon.verbs + lexicon.intransitive_verbs}
        own |= {a.lemma for a in lexicon.adjectives} | {place for _, place in lexicon.places}
        for sentence in document.sentences:
            assert sentence.topic == document.topic
            assert content_lemmas(sentence) <= own | LANGUAGE.shared_words, sentence.text()
            assert all(p.lemma in lexicon.names for p in phrases(sentence) if p.proper)
            assert sentence.place is None or (sentence.preposition, sentence.place) in lexicon.places
    assert {d.topic for d in DOCUMENTS} == set(LANGUAGE.topics)


def test_sentences_carry_topic_specific_words():
    specific = sum(bool(content_lemmas(s) - LANGUAGE.shared_words) for s in SENTENCES)
    assert specific / len(SENTENCES) > 0.95


def test_consecutive_sentences_are_linked_and_foreign_ones_are_not():
    def referents(sentence):
        return {p.lemma for p in phrases(sentence)}

    linked = [bool(referents(a) & referents(b)) for d in DOCUMENTS for a, b in zip(d.sentences, d.sentences[1:])]
    rng = random.Random(0)
    foreign = []
    while len(foreign) < 1000:
        a, b = rng.sample(DOCUMENTS, 2)
        if a.topic != b.topic:
            foreign.append(bool(referents(rng.choice(a.sentences)) & referents(rng.choice(b.sentences))))
    assert sum(linked) / len(linked) > 0.5
    assert sum(foreign) / len(foreign) < 0.05


def test_discourse_markers_appear_in_narrative_order():
    seen = Counter()
    for document in DOCUMENTS:
        last = len(document.sentences) - 1
        for index, sentence in enumerate(document.sentences):
            if sentence.marker in OPENING_MARKERS:
                assert index == 0
            elif sentence.marker in CLOSING_MARKERS:
                assert index == last
            elif sentence.marker is not None:
                assert sentence.marker in MIDDLE_MARKERS and 0 < index < last
            seen[sentence.marker] += 1
    assert all(seen[m] > 0 for m in OPENING_MARKERS + MIDDLE_MARKERS + CLOSING_MARKERS)


def test_documents_keep_one_tense_and_refer_back_definitely():
    for document in DOCUMENTS:
        assert len({s.tense for s in document.sentences}) == 1
        introduced: dict[str, bool] = {}
        for sentence in document.sentences:
            for phrase in phrases(sentence):
                if phrase.proper:
                    continue
                if phrase.lemma in introduced:
                    assert phrase.determiner in {"the", "this", "that", "these", "those"}
                    assert phrase.plural == introduced[phrase.lemma]
            for phrase in phrases(sentence):
                if not phrase.proper:
                    introduced.setdefault(phrase.lemma, phrase.plural)


def test_document_api():
    document = LANGUAGE.document(random.Random(5), 6)
    assert isinstance(document, Document) and len(document.sentences) == 6
    assert document.texts() == [s.text() for s in document.sentences]
    assert document.topic in LANGUAGE.topics


# -- sentiment ------------------------------------------------------------------------------------------------


def text_sentiment(text: str) -> int:
    words = tokens(text)
    total = sum(POLARITY_OF_FORM.get(w, 0) for w in words)
    sign = (total > 0) - (total < 0)
    return -sign if "not" in words else sign


def test_sentiment_matches_the_polarity_of_the_words_used():
    for sentence in SENTENCES:
        assert sentence.sentiment == text_sentiment(sentence.text()), sentence.text()
    shares = Counter(s.sentiment for s in SENTENCES)
    assert all(shares[label] / len(SENTENCES) > 0.15 for label in (-1, 0, 1))


@pytest.mark.parametrize("sentiment", [-1, 0, 1])
def test_sentiment_constraint_is_met_in_every_topic(sentiment):
    rng = random.Random(sentiment)
    for topic in LANGUAGE.topics:
        for i in range(60):
            negated = i % 3 == 0
            sentence = LANGUAGE.sentence(rng, topic, sentiment=sentiment, negated=negated)
            assert sentence.sentiment == sentiment == text_sentiment(sentence.text()), sentence.text()
            assert sentence.negated == negated


# -- constraints ----------------------------------------------------------------------------------------------


def test_structural_constraints_are_honoured():
    rng = random.Random(0)
    for topic in LANGUAGE.topics:
        for template in TEMPLATES:
            for tense in (PRESENT, PAST):
                sentence = LANGUAGE.sentence(rng, topic, template=template, tense=tense, plural=True, marker="then")
                assert (sentence.template, sentence.tense, sentence.plural) == (template, tense, True)
                assert sentence.text().startswith("Then, ")
    sentence = LANGUAGE.sentence(rng, "kitchen", subject="chef", obj="onion", plural=False, negated=True)
    assert sentence.subject.lemma == "chef" and sentence.obj.lemma == "onion"
    assert not sentence.plural and sentence.negated and sentence.template in (TRANSITIVE, RELATIVE)
    assert " does not " in sentence.text() or " did not " in sentence.text()
    assert LANGUAGE.sentence(rng, "kitchen", subject="onion").template == COPULAR
    name = LANGUAGE.lexicon["farm"].names[0]
    assert LANGUAGE.sentence(rng, "farm", subject=name).text().startswith(name)


def test_mentioned_nouns_keep_their_number_and_turn_definite():
    rng = random.Random(3)
    for _ in range(50):
        sentence = LANGUAGE.sentence(rng, "harbour", subject="ship", given={"ship": True})
        assert sentence.subject.plural and sentence.subject.determiner in {"the", "these", "those"}


def test_impossible_constraints_raise():
    rng = random.Random(0)
    name = LANGUAGE.lexicon["kitchen"].names[0]
    with pytest.raises(ValueError):
        LANGUAGE.sentence(rng, "volcano")
    with pytest.raises(ValueError):
        LANGUAGE.sentence(rng, "kitchen", subject=name, plural=True)
    with pytest.raises(ValueError):
        LANGUAGE.sentence(rng, "kitchen", template=COPULAR, obj="onion")
    with pytest.raises(ValueError):
        LANGUAGE.sentence(rng, "kitchen", subject="onion", template=TRANSITIVE)
    with pytest.raises(ValueError):
        LANGUAGE.sentence(rng, "kitchen", subject="fox")  # a forest noun
    with pytest.raises(ValueError):
        LANGUAGE.sentence(rng, "kitchen", sentiment=2)


# -- corpus statistics ----------------------------------------------------------------------------------------


def test_unigram_distribution_is_skewed_but_not_degenerate():
    counts = Counter(w for s in SENTENCES for w in tokens(s.text()))
    total, vocab = sum(counts.values()), len(counts)
    entropy = -sum(c / total * math.log(c / total) for c in counts.values())
    assert vocab > 500
    assert 0.6 * math.log(vocab) < entropy < 0.9 * math.log(vocab)
    assert counts.most_common(1)[0][1] / total < 0.15
    top_tenth = sum(c for _, c in counts.most_common(vocab // 10))
    assert top_tenth / total > 0.5  # Zipf-like: a few words carry most of the mass
