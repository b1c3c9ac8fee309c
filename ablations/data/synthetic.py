"""The embedded default corpus: a small, deterministic synthetic language.

`python run.py` has to pretrain something with no network access, and the
fine-tuning stage has to derive GLUE-shaped tasks (acceptability, sentiment,
paraphrase, similarity, entailment) from the very same language.  So sentences
are generated as structures (`Sentence`) and only rendered to text on demand:
downstream code can ask for a sentiment, swap a synonym, climb a hypernym or
break an agreement without parsing strings.

What a masked LM can learn here: determiner/noun and subject/verb agreement,
which verbs take which kinds of objects, topic-specific vocabulary with Zipf-like
frequencies, and discourse coherence inside a document (a recurring cast,
definite reference to things already mentioned, ordered discourse markers),
which is what makes Next Sentence Prediction learnable.

The lexicon below is fixed; `Language(seed)` only decides which words of each
category are frequent, so every Language shares one vocabulary.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping, NamedTuple, Sequence

__all__ = [
    "Adjective",
    "Document",
    "Language",
    "Noun",
    "NounPhrase",
    "Sentence",
    "TopicLexicon",
    "Verb",
    "generate_documents",
    "indefinite_article",
    "past_form",
    "plural_form",
    "third_person_form",
    "PRESENT",
    "PAST",
    "TRANSITIVE",
    "INTRANSITIVE",
    "COPULAR",
    "RELATIVE",
    "TEMPLATES",
    "OPENING_MARKERS",
    "MIDDLE_MARKERS",
    "CLOSING_MARKERS",
    "TIME_ADVERBIALS",
    "SINGULAR_DETERMINERS",
    "PLURAL_DETERMINERS",
]

PRESENT, PAST = "present", "past"
TRANSITIVE, INTRANSITIVE, COPULAR, RELATIVE = "transitive", "intransitive", "copular", "relative"
TEMPLATES = (TRANSITIVE, INTRANSITIVE, COPULAR, RELATIVE)

# ---------------------------------------------------------------------------
# Lexicon data.
#
# A compact notation keeps the whole language readable on a few screens:
#   nouns         "lemma>hypernym"; the root of the hypernym chain is the noun's
#                 semantic class, which is what verbs and adjectives select for.
#   verbs         "lemma:objects[:polarity[:subjects]]"   (subjects default: person)
#   intransitive  "lemma[:subjects[:polarity]]"
#   adjectives    "lemma:classes[:polarity]"
#   adverbs       "lemma[:polarity]"
#   places        "preposition:noun"  (always rendered definite: "in the pantry")
# "a|b" declares synonyms sharing one entry; "*" means any class; polarity is
# "+", "-" or empty.
# ---------------------------------------------------------------------------

_HYPERNYMS = (
    "worker>person child>person performer>person "
    "bird>animal dog>animal fish>animal insect>animal "
    "vegetable>food fruit>food bread>food "
    "tree>plant flower>plant seed>plant "
    "vessel>vehicle book>document timber>material"
)
# Roots of the hypernym hierarchy, i.e. the semantic classes verbs and adjectives select.
_ROOT_CLASSES = frozenset(
    "person animal food plant tool container vehicle document garment furnishing "
    "material machine instrument valuable".split()
)

_SHARED = dict(
    verbs=(
        "see|notice:*::person,animal like|enjoy:*:+:person,animal hate|dislike:*:-:person,animal "
        "find:* praise|admire:*:+ help|assist:person,animal:+ greet|welcome:person:+ "
        "ignore:person,animal:- feed:animal,person:+ "
        "carry:food,tool,container,document,garment,instrument,valuable,material "
        "repair|mend|fix:tool,vehicle,furnishing,machine,container,garment,instrument "
        "break|smash:tool,container,vehicle,furnishing,machine,instrument:-"
    ),
    intransitive=(
        "wait:person,animal rest:person,animal sleep:person,animal work laugh|chuckle:person:+ "
        "cry|weep:person:- complain|grumble:person:- smile:person:+"
    ),
    adjectives=(
        "good:*:+ bad:*:- lovely|pleasant:*:+ awful|terrible:*:- wonderful:*:+ ugly:*:- "
        "old:* new:* small|little:* big|large:* strange|odd:*"
    ),
    adverbs=(
        "quickly|rapidly slowly carefully quietly loudly happily|gladly:+ sadly:- angrily:- "
        "eagerly:+ patiently:+ clumsily:-"
    ),
)

_TOPICS = {
    "kitchen": dict(
        names="Mira Tomas Elena Bruno Ada",
        nouns=(
            "chef>worker baker>worker waiter|server>worker dishwasher>worker cat>animal mouse>animal "
            "onion>vegetable carrot>vegetable potato>vegetable apple>fruit lemon>fruit loaf>bread "
            "soup>food knife>tool spoon>tool ladle>tool pot>container pan>container bowl>container "
            "jar>container"
        ),
        verbs=(
            "chop|slice:food stir:food taste:food wash|rinse:food,tool,container fill:container "
            "burn:food:- spoil:food:- serve:food bake:food polish:tool,container "
            "chase:animal::person,animal"
        ),
        intransitive="hum whistle hurry|rush",
        adjectives=(
            "fresh:food,plant:+ ripe:food:+ rotten:food:- stale:food:- hot:food,container "
            "sharp:tool dull:tool:- clean:tool,container:+ dirty:tool,container:- "
            "tasty|delicious:food:+ hungry:person,animal tired:person,animal:-"
        ),
        places="in:pantry at:stove near:cupboard by:oven",
    ),
    "harbour": dict(
        names="Jonas Marta Pieter Ingrid Olaf",
        nouns=(
            "sailor>worker captain>worker fisherman>worker docker>worker gull>bird seal>animal "
            "crab>animal herring>fish eel>fish net>tool rope>tool anchor>tool hook>tool ship>vessel "
            "ferry>vessel barge>vessel crate>container barrel>container"
        ),
        verbs=(
            "load:container,tool unload:container steer:vehicle sink:vehicle:- "
            "catch:animal::person,animal paint:vehicle,container tie:tool tow|haul:vehicle,container"
        ),
        intransitive="sail row swim:person,animal dive:person,animal",
        adjectives=(
            "salty:food,animal wet:tool,vehicle,person,animal rusty:tool,vehicle,container:- "
            "sturdy:vehicle,container,tool:+ leaky:vehicle,container:- brave:person:+ "
            "seasick:person:- swift|fast:vehicle,animal:+"
        ),
        places="on:pier at:quay by:lighthouse near:dock",
    ),
    "forest": dict(
        names="Rowan Elsa Finn Hilde Sven",
        nouns=(
            "ranger>worker hunter>worker woodcutter>worker hiker>person fox>animal wolf>animal "
            "owl>bird hare>animal badger>animal oak>tree pine>tree birch>tree fern>plant "
            "mushroom>plant berry>fruit acorn>seed axe>tool"
        ),
        verbs=(
            "cut:plant hunt:animal track|follow:animal,person gather|collect:plant,food climb:plant "
            "scare|frighten:animal,person:-:person,animal stalk:animal::person,animal"
        ),
        intransitive="howl:animal wander|roam:person,animal hide:person,animal camp",
        adjectives=(
            "wild:animal,plant tall:plant,person mossy:plant sly:animal fierce:animal:- "
            "gentle:animal,person:+ poisonous:plant,food:- green:plant"
        ),
        places="in:clearing by:stream near:thicket beside:cabin",
    ),
    "market": dict(
        names="Lucia Marco Yusuf Greta Paolo",
        nouns=(
            "merchant|trader>worker customer>person porter>worker thief>person pear>fruit plum>fruit "
            "cabbage>vegetable cheese>food egg>food basket>container sack>container purse>container "
            "scale>tool coin>valuable jewel>valuable scarf>garment hat>garment"
        ),
        verbs=(
            "buy|purchase:food,garment,container,valuable sell:food,garment,container,valuable "
            "weigh:food steal:food,garment,container,valuable:- count:valuable pay:person "
            "display:food,garment,valuable"
        ),
        intransitive="haggle|bargain shout browse",
        adjectives=(
            "cheap:food,garment,container,valuable "
            "costly|expensive:food,garment,container,valuable:- bruised:food:- juicy:food:+ "
            "honest:person:+ greedy:person:- woollen:garment heavy:container,tool,food"
        ),
        places="at:stall in:square near:fountain by:gate",
    ),
    "school": dict(
        names="Noah Clara Oskar Lena Amir",
        nouns=(
            "teacher>worker pupil|student>child headmaster>worker janitor>worker hamster>animal "
            "textbook>book notebook>book essay>document map>document pencil>tool ruler>tool "
            "desk>furnishing chair>furnishing"
        ),
        verbs=(
            "read:document write:document grade|assess:document copy:document sharpen:tool "
            "teach:person scold:person:- tear|rip:document:- move:furnishing"
        ),
        intransitive="study listen yawn:person,animal giggle:person:+",
        adjectives=(
            "clever|bright:person:+ lazy:person:- strict:person boring:document,person:- "
            "neat|tidy:document,person,furnishing:+ messy:document,furnishing,person:- blunt:tool:- "
            "wooden:furnishing,tool"
        ),
        places="in:classroom at:blackboard in:hallway in:playground",
    ),
    "farm": dict(
        names="Hugo Anna Bram Ruth Jakob",
        nouns=(
            "farmer>worker shepherd>worker farmhand>worker collie>dog poodle>dog cow>animal "
            "goat>animal pig>animal horse>animal hen>bird goose>bird tractor>vehicle spade>tool "
            "bucket>container turnip>vegetable"
        ),
        verbs=(
            "groom|brush:animal herd:animal milk:animal drive:vehicle harvest:plant,food "
            "dig:plant,food kick:animal,container,tool:-:person,animal"
        ),
        intransitive="graze:animal toil|labour",
        adjectives=(
            "muddy:animal,vehicle,tool,person:- plump:animal,food healthy:animal,person,plant:+ "
            "sick|ill:animal,person:- golden:plant,food noisy:animal,vehicle:- loyal:animal,person:+"
        ),
        places="in:barn near:pond by:fence in:meadow",
    ),
    "workshop": dict(
        names="Viktor Nora Emil Sofia Lars",
        nouns=(
            "carpenter>worker blacksmith>worker apprentice>worker welder>worker hammer>tool "
            "chisel>tool drill>tool screw>tool plank>timber beam>timber bench>furnishing "
            "cabinet>furnishing toolbox>container bicycle>vehicle clock>machine engine>machine"
        ),
        verbs=(
            "carve:material,furnishing build:furnishing,vehicle,machine measure:material,furnishing "
            "sand|smooth:material,furnishing bend:material,tool oil:machine,tool,vehicle "
            "weld:material,vehicle,machine scratch:furnishing,vehicle,machine:-"
        ),
        intransitive="tinker concentrate sweat:person:-",
        adjectives=(
            "shiny:tool,machine,vehicle:+ crooked:material,furnishing,tool:- "
            "broken:machine,vehicle,tool,furnishing:- oily:machine,tool,person:- "
            "precise|accurate:tool,machine,person:+ skilled:person:+ clumsy:person:-"
        ),
        places="in:shed near:forge by:furnace at:lathe",
    ),
    "theatre": dict(
        names="Isabel Felix Rosa Dmitri Celia",
        nouns=(
            "actor>performer singer>performer dancer>performer director>worker critic>person "
            "usher>worker costume>garment mask>garment script>document ticket>document "
            "drum>instrument violin>instrument flute>instrument lamp>machine"
        ),
        verbs=(
            "rehearse|practise:document play:instrument applaud|cheer:person:+ boo|heckle:person:- "
            "tune:instrument wear:garment sew|stitch:garment learn:document forget:document:-"
        ),
        intransitive="bow dance sing stumble:person:-",
        adjectives=(
            "famous:person:+ talented|gifted:person:+ nervous:person:- dramatic:document,person "
            "elegant:garment,person:+ shabby:garment,furnishing:- squeaky:instrument,machine:- "
            "dim:machine:-"
        ),
        places="on:stage behind:curtain in:foyer on:balcony",
    ),
    "garden": dict(
        names="Iris Walter Maud Percy Hazel",
        nouns=(
            "gardener>worker neighbour>person rose>flower tulip>flower daisy>flower hedge>plant "
            "cherry>fruit bee>insect snail>animal worm>animal hose>tool rake>tool trowel>tool "
            "wheelbarrow>container"
        ),
        verbs=(
            "water:plant prune|trim:plant pick:plant,food spray:plant,animal "
            "trample|crush:plant:-:person,animal sniff|smell:plant,food::person,animal"
        ),
        intransitive=(
            "kneel buzz:animal crawl:animal,person grow:plant,animal sway:plant "
            "bloom|blossom:plant:+ wilt|wither:plant:-"
        ),
        adjectives=(
            "fragrant:plant:+ thorny:plant:- lush:plant:+ colourful:plant,animal,garment:+ "
            "slimy:animal:- droopy:plant:- busy:person,animal"
        ),
        places="in:greenhouse along:path in:orchard beside:trellis",
    ),
    "library": dict(
        names="Agnes Theo Vera Oswald Mina",
        nouns=(
            "librarian>worker reader>person scholar>person novel>book atlas>book dictionary>book "
            "diary|journal>book magazine>document scroll>document shelf>furnishing ladder>tool "
            "bookmark>tool trolley>vehicle"
        ),
        verbs=(
            "borrow:document lend:document sort|arrange:document stamp:document "
            "dust:furnishing,document misplace|lose:document,tool:- annotate:document "
            "recommend:document:+"
        ),
        intransitive="whisper doze|nap:person,animal frown:person:-",
        adjectives=(
            "dusty:document,furnishing:- rare:document thick:document silent|quiet:person,animal "
            "scholarly:person,document fascinating:document,person:+ torn:document,garment:-"
        ),
        places="in:archive at:counter near:window near:staircase",
    ),
}

OPENING_MARKERS = ("first", "one morning")
MIDDLE_MARKERS = ("then", "later", "after that", "next", "soon", "meanwhile")
CLOSING_MARKERS = ("finally", "in the end")
# Time adverbials must agree with tense, a long-range cue a masked LM can use.
TIME_ADVERBIALS = {
    PRESENT: ("today", "every day", "every morning", "each week"),
    PAST: ("yesterday", "last night", "last week", "long ago"),
}

# Determiners with their relative frequencies.  "a" stands for a/an, which is
# resolved at render time so that swapping an adjective keeps it correct; ""
# is the bare plural ("Mira chops onions").
_SINGULAR_DETERMINERS = (("the", 34), ("a", 42), ("this", 10), ("that", 5), ("every", 9))
_PLURAL_DETERMINERS = (
    ("the", 26), ("", 22), ("some", 14), ("these", 10), ("those", 6), ("two", 8), ("three", 7),
    ("many", 7),
)
SINGULAR_DETERMINERS = frozenset(d for d, _ in _SINGULAR_DETERMINERS)
PLURAL_DETERMINERS = frozenset(d for d, _ in _PLURAL_DETERMINERS if d)
# How a noun already introduced in the discourse is referred to again.
_GIVEN_SINGULAR_DETERMINERS = (("the", 60), ("this", 28), ("that", 12))
_GIVEN_PLURAL_DETERMINERS = (("the", 60), ("these", 28), ("those", 12))

# Generation rates: tuned so that sentences mostly land in 6-20 words and the
# unigram distribution is not dominated by "the".
_TEMPLATE_WEIGHTS = {TRANSITIVE: 45, INTRANSITIVE: 20, COPULAR: 20, RELATIVE: 15}
_NAME_RATE = 0.3
_PLURAL_RATE = 0.35
_ADJECTIVE_RATE = 0.45
_NEGATION_RATE = 0.1
_HYPERNYM_RATE = 0.04
_INSTRUMENT_RATE = 0.2
_TIME_RATE = 0.2
_MIN_WORDS = 6  # each sentence is padded to at least 6..8 words (see Language._lengthen)
_MIN_WORDS_SPREAD = 3
_ADVERB_RATE = {TRANSITIVE: 0.12, INTRANSITIVE: 0.5, COPULAR: 0.0, RELATIVE: 0.0}
_PLACE_RATE = {TRANSITIVE: 0.25, INTRANSITIVE: 0.6, COPULAR: 0.3, RELATIVE: 0.1}

# ---------------------------------------------------------------------------
# Morphology.  Public because downstream tasks (e.g. CoLA-like corruptions)
# need the same inflections to produce near-miss forms.
# ---------------------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "knife": "knives", "loaf": "loaves", "wolf": "wolves", "shelf": "shelves", "thief": "thieves",
    "scarf": "scarves", "mouse": "mice", "child": "children", "person": "people",
    "fisherman": "fishermen", "goose": "geese", "potato": "potatoes",
}
_IRREGULAR_PASTS = {
    "see": "saw", "find": "found", "break": "broke", "catch": "caught", "sink": "sank", "cut": "cut",
    "hide": "hid", "feed": "fed", "buy": "bought", "sell": "sold", "steal": "stole", "pay": "paid",
    "read": "read", "write": "wrote", "tear": "tore", "teach": "taught", "drive": "drove",
    "dig": "dug", "build": "built", "bend": "bent", "wear": "wore", "forget": "forgot",
    "sing": "sang", "lend": "lent", "lose": "lost", "sleep": "slept", "kneel": "knelt",
    "swim": "swam", "weep": "wept", "grow": "grew", "do": "did", "be": "was",
}
_IRREGULAR_THIRD_PERSON = {"do": "does", "go": "goes", "be": "is"}
_AN_EXCEPTIONS = {"honest": "an"}  # spelling says consonant, sound says vowel
_VOWELS = frozenset("aeiou")


def plural_form(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def third_person_form(verb: str) -> str:
    if verb in _IRREGULAR_THIRD_PERSON:
        return _IRREGULAR_THIRD_PERSON[verb]
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in _VOWELS:
        return verb[:-1] + "ies"
    return verb + "s"


def past_form(verb: str) -> str:
    if verb in _IRREGULAR_PASTS:
        return _IRREGULAR_PASTS[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    if _doubles_final_consonant(verb):
        return verb + verb[-1] + "ed"
    return verb + "ed"


def _doubles_final_consonant(verb: str) -> bool:
    """Single-syllable consonant-vowel-consonant verbs double: chop -> chopped."""
    if len(verb) < 3 or verb[-1] in "wxy" or verb[-1] in _VOWELS:
        return False
    if verb[-2] not in _VOWELS or verb[-3] in _VOWELS:
        return False
    vowel_groups = sum(
        1 for i, ch in enumerate(verb) if ch in _VOWELS and (i == 0 or verb[i - 1] not in _VOWELS)
    )
    return vowel_groups == 1


def indefinite_article(word: str) -> str:
    if word in _AN_EXCEPTIONS:
        return _AN_EXCEPTIONS[word]
    return "an" if word[0] in _VOWELS else "a"


# ---------------------------------------------------------------------------
# Lexicon entries.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    lemma: str
    cls: str  # semantic class: the root of the hypernym chain
    hypernym: str | None


@dataclass(frozen=True)
class Verb:
    lemma: str
    subjects: frozenset[str]
    objects: frozenset[str] | None  # None: any class; empty: intransitive
    polarity: int

    def takes(self, cls: str) -> bool:
        return self.objects is None or cls in self.objects


@dataclass(frozen=True)
class Adjective:
    lemma: str
    classes: frozenset[str] | None  # None: applies to anything
    polarity: int

    def fits(self, cls: str) -> bool:
        return self.classes is None or cls in self.classes


@dataclass(frozen=True)
class TopicLexicon:
    """Everything usable in one topic, shared entries included.

    Each tuple is ordered from most to least frequent under the Language's
    seed; generation draws with weights 1/(rank+1).
    """

    nouns: tuple[Noun, ...]
    names: tuple[str, ...]
    verbs: tuple[Verb, ...]
    intransitive_verbs: tuple[Verb, ...]
    adjectives: tuple[Adjective, ...]
    places: tuple[tuple[str, str], ...]


def _polarity(token: str) -> int:
    return {"+": 1, "-": -1, "": 0}[token]


def _classes(token: str) -> frozenset[str] | None:
    if token == "*":
        return None
    classes = frozenset(token.split(","))
    if not classes <= _ROOT_CLASSES:
        raise ValueError(f"lexicon selects for non-root classes {sorted(classes - _ROOT_CLASSES)}")
    return classes


def _class_of(word: str, hypernyms: Mapping[str, str]) -> str:
    while word in hypernyms:
        word = hypernyms[word]
    return word


# Parsers return (synonyms, entry) pairs; an entry is shared by its synonyms.


def _fields(entry: str, count: int) -> tuple[tuple[str, ...], list[str]]:
    head, *rest = entry.split(":")
    return tuple(head.split("|")), rest + [""] * (count - len(rest))


def _parse_nouns(spec: str) -> list[tuple[tuple[str, ...], str]]:
    entries = []
    for entry in spec.split():
        words, parent = entry.split(">")
        entries.append((tuple(words.split("|")), parent))
    return entries


def _parse_verbs(spec: str, transitive: bool) -> list[tuple[tuple[str, ...], Verb]]:
    entries = []
    for entry in spec.split():
        if transitive:
            words, (objects, polarity, subjects) = _fields(entry, 3)
            object_classes = _classes(objects)
        else:
            words, (subjects, polarity) = _fields(entry, 2)
            object_classes = frozenset()
        verb = Verb(words[0], _classes(subjects or "person"), object_classes, _polarity(polarity))
        entries.append((words, verb))
    return entries


def _parse_adjectives(spec: str) -> list[tuple[tuple[str, ...], Adjective]]:
    entries = []
    for entry in spec.split():
        words, (classes, polarity) = _fields(entry, 2)
        entries.append((words, Adjective(words[0], _classes(classes), _polarity(polarity))))
    return entries


def _parse_adverbs(spec: str) -> list[tuple[tuple[str, ...], int]]:
    entries = []
    for entry in spec.split():
        words, (polarity,) = _fields(entry, 1)
        entries.append((words, _polarity(polarity)))
    return entries


def _expand(entries: list[tuple[tuple[str, ...], Verb | Adjective]]) -> list:
    """One lexicon item per synonym: synonyms are distinct words with equal meaning."""
    return [replace(item, lemma=word) for words, item in entries for word in words]


# ---------------------------------------------------------------------------
# Structured sentences.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NounPhrase:
    """A noun phrase kept as lemma + features so rewrites re-render correctly."""

    lemma: str
    cls: str
    plural: bool = False
    determiner: str | None = "the"  # None: proper name; "": bare plural; "a": a/an
    adjectives: tuple[str, ...] = ()

    @property
    def proper(self) -> bool:
        return self.determiner is None

    def words(self) -> list[str]:
        if self.determiner is None:
            return [self.lemma]
        head = plural_form(self.lemma) if self.plural else self.lemma
        if not self.determiner:
            return [*self.adjectives, head]
        following = self.adjectives[0] if self.adjectives else head
        determiner = indefinite_article(following) if self.determiner == "a" else self.determiner
        return [determiner, *self.adjectives, head]


def _verb_group(verb: str, tense: str, plural: bool, negated: bool) -> list[str]:
    if verb == "be":
        if tense == PRESENT:
            form = "are" if plural else "is"
        else:
            form = "were" if plural else "was"
        return [form, "not"] if negated else [form]
    if negated:
        auxiliary = "did" if tense == PAST else ("do" if plural else "does")
        return [auxiliary, "not", verb]
    if tense == PAST:
        return [past_form(verb)]
    return [verb] if plural else [third_person_form(verb)]


@dataclass(frozen=True)
class Sentence:
    """One clause of the language, in one of four templates.

    transitive:   [marker,] SUBJ VERB OBJ [ADVERB] [with INSTRUMENT] [PREP the PLACE] [TIME].
    intransitive: [marker,] SUBJ VERB [ADVERB] [PREP the PLACE] [TIME].
    copular:      [marker,] SUBJ is/are COMPLEMENT [PREP the PLACE] [TIME].   (verb == "be")
    relative:     [marker,] SUBJ who/that RELATIVE_VERB RELATIVE_OBJ VERB OBJ [PREP the PLACE] [TIME].

    Negation applies to the main verb only; the relative clause agrees with
    the subject like the main verb does.
    """

    topic: str
    template: str
    subject: NounPhrase
    verb: str
    obj: NounPhrase | None = None
    complement: str | None = None
    relative_verb: str | None = None
    relative_obj: NounPhrase | None = None
    adverb: str | None = None
    instrument: NounPhrase | None = None
    preposition: str | None = None
    place: str | None = None
    time: str | None = None  # a TIME_ADVERBIALS entry matching the tense
    tense: str = PRESENT
    negated: bool = False
    marker: str | None = None

    @property
    def plural(self) -> bool:
        return self.subject.plural

    @property
    def sentiment(self) -> int:
        """Sign of the summed word polarities, flipped by negation.

        A property rather than a stored field so that any rewrite (synonym swap,
        adjective change) keeps the label consistent with the words.
        """
        return _sentence_sentiment(self.polar_words(), self.negated)

    def polar_words(self) -> list[str]:
        """Lemmas that may carry polarity: adjectives, verbs and adverbs."""
        words = [*self.subject.adjectives, self.verb]
        for phrase in (self.obj, self.relative_obj, self.instrument):
            if phrase is not None:
                words += phrase.adjectives
        for word in (self.complement, self.relative_verb, self.adverb):
            if word is not None:
                words.append(word)
        return words

    def words(self) -> list[str]:
        words = self.marker.split() if self.marker else []
        words += self.subject.words()
        if self.relative_verb is not None:
            words.append("who" if self.subject.cls == "person" else "that")
            words += _verb_group(self.relative_verb, self.tense, self.subject.plural, False)
            words += self.relative_obj.words()
        words += _verb_group(self.verb, self.tense, self.subject.plural, self.negated)
        if self.complement is not None:
            words.append(self.complement)
        if self.obj is not None:
            words += self.obj.words()
        if self.adverb is not None:
            words.append(self.adverb)
        if self.instrument is not None:
            words += ["with", *self.instrument.words()]
        if self.place is not None:
            words += [self.preposition, "the", self.place]
        if self.time is not None:
            words += self.time.split()
        return words

    def text(self) -> str:
        words = self.words()
        if self.marker:
            marker_length = len(self.marker.split())
            words[marker_length - 1] += ","
        rendered = " ".join(words)
        return rendered[0].upper() + rendered[1:] + "."


@dataclass(frozen=True)
class Document:
    topic: str
    sentences: tuple[Sentence, ...]

    def texts(self) -> list[str]:
        return [sentence.text() for sentence in self.sentences]


# ---------------------------------------------------------------------------
# The language.
# ---------------------------------------------------------------------------


def _sentence_sentiment(words: Sequence[str], negated: bool) -> int:
    total = sum(_POLARITY.get(word, 0) for word in words)
    sign = (total > 0) - (total < 0)
    return -sign if negated else sign


class _Pool:
    """A fixed weighted population; picking is one bisect on cumulative weights."""

    __slots__ = ("items", "_cumulative", "_total")

    def __init__(self, items: Sequence, weights: Sequence[float]):
        self.items = tuple(items)
        cumulative, total = [], 0.0
        for weight in weights:
            total += weight
            cumulative.append(total)
        self._cumulative, self._total = cumulative, total

    def __bool__(self) -> bool:
        return bool(self.items)

    def pick(self, rng: random.Random):
        return self.items[bisect.bisect_right(self._cumulative, rng.random() * self._total)]


class _Referent(NamedTuple):
    lemma: str
    cls: str
    proper: bool


_NEUTRAL = frozenset({0})
_ALLOWED = {
    # target polarity -> (slots that must carry it, slots that must not oppose it)
    1: (frozenset({1}), frozenset({0, 1})),
    -1: (frozenset({-1}), frozenset({0, -1})),
}


class _Draw:
    """Per-sentence sampling state: the rng and the sentiment plan."""

    __slots__ = ("rng", "topic", "given", "target", "carrier")

    def __init__(self, rng, topic, given, target):
        self.rng, self.topic, self.given, self.target = rng, topic, given, target
        self.carrier = None

    def allowed(self, slot: str) -> frozenset[int] | None:
        """Polarities a word in `slot` may have so the sentence hits the target."""
        if self.target is None:
            return None
        if self.target == 0:
            return _NEUTRAL
        carrying, compatible = _ALLOWED[self.target]
        return carrying if slot == self.carrier else compatible


class Language:
    """The lexicon + grammar. Deterministic: Language(seed) builds the same lexicon every time.

    The words are fixed; the seed only ranks each category by frequency, so
    different seeds give different Zipf profiles over one shared vocabulary.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        ranking = random.Random(f"synthetic-language:{seed}")
        self.topics: tuple[str, ...] = tuple(_TOPICS)
        self.lexicon: Mapping[str, TopicLexicon] = MappingProxyType(
            {topic: _build_topic_lexicon(topic, ranking) for topic in self.topics}
        )
        # word -> its other synonyms; synonyms share class restrictions and polarity
        self.synonyms: Mapping[str, tuple[str, ...]] = MappingProxyType(_SYNONYMS)
        # noun -> its direct hypernym (onion -> vegetable -> food)
        self.hypernyms: Mapping[str, str] = MappingProxyType(_ALL_HYPERNYMS)
        # word -> +1/-1 for every polar adjective, verb and adverb (others are neutral)
        self.polarity: Mapping[str, int] = MappingProxyType(_POLARITY)
        # lemmas usable in every topic (shared verbs, adjectives, adverbs, hypernyms)
        self.shared_words: frozenset[str] = _SHARED_WORDS
        adverbs = list(_ADVERBS)
        ranking.shuffle(adverbs)
        self.adverbs: tuple[str, ...] = tuple(adverbs)
        self._names = {topic: frozenset(lex.names) for topic, lex in self.lexicon.items()}
        self._pools: dict[tuple, _Pool] = {}

    # -- public helpers -----------------------------------------------------

    def ancestors(self, word: str) -> tuple[str, ...]:
        """Hypernym chain, most specific first: poodle -> (dog, animal)."""
        chain = []
        while word in self.hypernyms:
            word = self.hypernyms[word]
            chain.append(word)
        return tuple(chain)

    def noun_class(self, word: str) -> str:
        return _class_of(word, self.hypernyms)

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every lower-cased word form that rendered text can contain."""
        return _VOCABULARY

    # -- generation ---------------------------------------------------------

    def sentence(
        self,
        rng: random.Random,
        topic: str,
        *,
        template: str | None = None,
        subject: str | None = None,
        obj: str | None = None,
        sentiment: int | None = None,
        tense: str | None = None,
        plural: bool | None = None,
        negated: bool | None = None,
        marker: str | None = None,
        given: Mapping[str, bool] | None = None,
    ) -> Sentence:
        """One grammatical sentence on `topic`; every keyword is an optional constraint.

        template:  one of TEMPLATES.
        subject, obj: a noun lemma of the topic, a shared hypernym or a topic name.
        sentiment: -1, 0 or +1; words are chosen so the derived sentiment matches.
        tense:     PRESENT or PAST.   plural: number of the subject.
        negated:   negate the main verb.   marker: discourse marker to prepend.
        given:     nouns already introduced in the discourse -> their number;
                   they keep that number and are referred to definitely.
        Unset constraints are sampled.  Raises ValueError if unsatisfiable.
        """
        if topic not in self.lexicon:
            raise ValueError(f"unknown topic {topic!r}; expected one of {self.topics}")
        if template is not None and template not in TEMPLATES:
            raise ValueError(f"unknown template {template!r}")
        if sentiment not in (None, -1, 0, 1):
            raise ValueError(f"sentiment must be -1, 0 or 1, not {sentiment!r}")
        if tense not in (None, PRESENT, PAST):
            raise ValueError(f"tense must be {PRESENT!r} or {PAST!r}, not {tense!r}")
        if tense is None:
            tense = PRESENT if rng.random() < 0.5 else PAST
        if negated is None:
            negated = rng.random() < _NEGATION_RATE
        target = None if sentiment is None else (-sentiment if negated else sentiment)
        draw = _Draw(rng, topic, given or {}, target)

        subject_ref = self._referent(topic, subject) if subject is not None else None
        object_ref = self._referent(topic, obj) if obj is not None else None
        if subject_ref is not None and subject_ref.proper and plural:
            raise ValueError(f"{subject!r} is a name and cannot be plural")
        if template is None:
            template = self._choose_template(rng, topic, subject_ref, object_ref)
        if object_ref is not None and template in (COPULAR, INTRANSITIVE):
            raise ValueError(f"a {template} sentence has no object")
        if subject_ref is None:
            subject_ref = self._choose_subject(rng, topic, template, plural)
        elif not self._can_be_subject(topic, template, subject_ref):
            raise ValueError(f"{subject!r} cannot be the subject of a {template} sentence")
        if subject_ref.proper:
            plural = False

        if template == COPULAR:
            fields = self._copular(draw, subject_ref, plural)
        elif template == INTRANSITIVE:
            fields = self._intransitive(draw, subject_ref, plural)
        else:
            fields = self._transitive(draw, subject_ref, object_ref, plural, template == RELATIVE)
        if rng.random() < _PLACE_RATE[template]:
            fields["preposition"], fields["place"] = self._pool_places(topic).pick(rng)
        if rng.random() < _TIME_RATE:
            fields["time"] = rng.choice(TIME_ADVERBIALS[tense])
        missing = _MIN_WORDS + int(rng.random() * _MIN_WORDS_SPREAD) - _length(fields, negated, marker)
        if missing > 0:
            self._lengthen(draw, template, fields, tense, missing)
        return Sentence(
            topic=topic, template=template, tense=tense, negated=negated, marker=marker, **fields
        )

    def document(self, rng: random.Random, num_sentences: int, topics: Sequence[str] | None = None) -> Document:
        """A coherent story: one topic, one tense, a protagonist and a few recurring props.

        Consecutive sentences are linked (the previous object often becomes the
        next subject; the protagonist recurs), mentioned nouns turn definite,
        and discourse markers appear in narrative order. `topics` narrows the
        choice of topic (and so the vocabulary a small corpus spreads over).
        """
        if num_sentences < 1:
            raise ValueError("a document needs at least one sentence")
        pool = tuple(topics) if topics else self.topics
        if not set(pool) <= set(self.topics):
            raise ValueError(f"unknown topic in {pool}; expected some of {self.topics}")
        topic = pool[rng.randrange(len(pool))]
        tense = PRESENT if rng.random() < 0.5 else PAST
        protagonist = self._pool_names(topic).pick(rng)
        props = self._choose_props(rng, topic, count=3)
        given: dict[str, bool] = {}
        sentences: list[Sentence] = []
        previous: Sentence | None = None
        for index in range(num_sentences):
            roll = rng.random()
            if previous is None:
                subject = protagonist
            elif roll < 0.35 and previous.obj is not None:
                subject = previous.obj.lemma  # continue with what was just acted upon
            elif roll < 0.75:
                subject = protagonist
            else:
                subject = None
            obj = None
            if subject is not None and self._can_act(topic, subject):
                roll = rng.random()
                if roll < 0.5:
                    obj = props[rng.randrange(len(props))]
                elif roll < 0.58 and subject != protagonist:
                    obj = protagonist
                if obj == subject:
                    obj = None
            sentence = self.sentence(
                rng,
                topic,
                subject=subject,
                obj=obj,
                tense=tense,
                marker=_marker(rng, index, num_sentences),
                given=given,
            )
            phrases = (sentence.subject, sentence.relative_obj, sentence.obj, sentence.instrument)
            for phrase in phrases:
                if phrase is not None and not phrase.proper and phrase.lemma not in given:
                    given[phrase.lemma] = phrase.plural
            sentences.append(sentence)
            previous = sentence
        return Document(topic, tuple(sentences))

    def _lengthen(self, draw: _Draw, template: str, fields: dict, tense: str, missing: int) -> None:
        """Add optional parts to a short sentence until `missing` more words are in.

        Without this, sentences with a name as subject are mostly 4-5 words.
        Adjectives and adverbs come first: they add content words, whereas a
        place phrase adds yet another "the".
        """
        rng = draw.rng
        for key, slot in (("subject", "subject"), ("obj", "object")):
            phrase = fields.get(key)
            if missing > 0 and phrase is not None and not phrase.proper and not phrase.adjectives:
                pool = self._pool_adjectives(draw.topic, phrase.cls, draw.allowed(slot))
                fields[key] = replace(phrase, adjectives=(pool.pick(rng),))
                missing -= 1
        if missing > 0 and template in (TRANSITIVE, INTRANSITIVE) and "adverb" not in fields:
            fields["adverb"] = self._pool_adverbs(draw.allowed("adverb")).pick(rng)
            missing -= 1
        if missing > 0 and "time" not in fields:
            fields["time"] = rng.choice(TIME_ADVERBIALS[tense])
            missing -= len(fields["time"].split())
        if missing > 0 and "place" not in fields:
            fields["preposition"], fields["place"] = self._pool_places(draw.topic).pick(rng)

    # -- template builders ----------------------------------------------------

    def _copular(self, draw: _Draw, subject: _Referent, plural: bool | None) -> dict:
        draw.carrier = self._choose_carrier(draw, subject, ("complement",))
        subject_phrase = self._noun_phrase(draw, subject, plural, "subject")
        complement = self._pool_adjectives(draw.topic, subject.cls, draw.allowed("complement"))
        return dict(subject=subject_phrase, verb="be", complement=complement.pick(draw.rng))

    def _intransitive(self, draw: _Draw, subject: _Referent, plural: bool | None) -> dict:
        verb_is_feasible = lambda: bool(  # noqa: E731 - only evaluated for polar targets
            self._pool_verbs(draw.topic, False, subject.cls, None, _ALLOWED[draw.target][0])
        )
        draw.carrier = self._choose_carrier(
            draw, subject, ("adverb", "subject", "verb"), verb_is_feasible
        )
        subject_phrase = self._noun_phrase(draw, subject, plural, "subject")
        verb = self._pick_verb(draw, False, subject.cls, None, "verb")
        fields = dict(subject=subject_phrase, verb=verb.lemma)
        if draw.carrier == "adverb" or draw.rng.random() < _ADVERB_RATE[INTRANSITIVE]:
            fields["adverb"] = self._pool_adverbs(draw.allowed("adverb")).pick(draw.rng)
        return fields

    def _transitive(
        self,
        draw: _Draw,
        subject: _Referent,
        obj: _Referent | None,
        plural: bool | None,
        relative: bool,
    ) -> dict:
        rng, topic = draw.rng, draw.topic
        object_class = obj.cls if obj is not None else None
        verb_is_feasible = lambda: bool(  # noqa: E731 - only evaluated for polar targets
            self._pool_verbs(topic, True, subject.cls, object_class, _ALLOWED[draw.target][0])
        )
        slots = ["subject", "verb"]
        if obj is None or not obj.proper:
            slots.append("object")
        slots.append("relative_object" if relative else "adverb")
        draw.carrier = self._choose_carrier(draw, subject, slots, verb_is_feasible)

        fields = dict(subject=self._noun_phrase(draw, subject, plural, "subject"))
        if relative:
            relative_verb = self._pick_verb(draw, True, subject.cls, None, "relative_verb")
            relative_obj = self._choose_object(rng, topic, relative_verb, subject.lemma)
            fields["relative_verb"] = relative_verb.lemma
            fields["relative_obj"] = self._noun_phrase(draw, relative_obj, None, "relative_object")
        verb = self._pick_verb(draw, True, subject.cls, object_class, "verb")
        if obj is None:
            obj = self._choose_object(rng, topic, verb, subject.lemma)
        fields["verb"] = verb.lemma
        fields["obj"] = self._noun_phrase(draw, obj, None, "object")
        if relative:
            return fields
        if draw.carrier == "adverb" or rng.random() < _ADVERB_RATE[TRANSITIVE]:
            fields["adverb"] = self._pool_adverbs(draw.allowed("adverb")).pick(rng)
        tools = self._pool_nouns(topic, _TOOLS)
        if subject.cls == "person" and tools and rng.random() < _INSTRUMENT_RATE:
            tool = tools.pick(rng)
            if tool.lemma != obj.lemma:
                instrument = _Referent(tool.lemma, tool.cls, False)
                fields["instrument"] = self._noun_phrase(draw, instrument, None, "instrument")
        return fields

    # -- choices --------------------------------------------------------------

    def _choose_carrier(self, draw: _Draw, subject: _Referent, slots, verb_is_feasible=None):
        """Pick the slot that will carry the requested polarity (polar targets only)."""
        if draw.target is None or draw.target == 0:
            return None
        feasible = [
            slot
            for slot in slots
            if not (slot == "subject" and subject.proper)
            and not (slot == "verb" and not verb_is_feasible())
        ]
        return feasible[draw.rng.randrange(len(feasible))]

    def _choose_template(
        self, rng: random.Random, topic: str, subject: _Referent | None, obj: _Referent | None
    ) -> str:
        subject_kind = None if subject is None else (subject.cls, subject.proper)
        key = ("templates", topic, subject_kind, obj is not None)
        pool = self._pools.get(key)
        if pool is None:
            options = (TRANSITIVE, RELATIVE) if obj is not None else TEMPLATES
            if subject is not None:
                options = tuple(t for t in options if self._can_be_subject(topic, t, subject))
            pool = self._pools[key] = _Pool(options, [_TEMPLATE_WEIGHTS[t] for t in options])
        if not pool:
            raise ValueError(f"{subject.lemma!r} cannot be the subject of a transitive verb")
        return pool.pick(rng)

    def _choose_subject(
        self, rng: random.Random, topic: str, template: str, plural: bool | None
    ) -> _Referent:
        classes = self._subject_classes(topic, template)
        may_be_name = not plural and template != RELATIVE and (classes is None or "person" in classes)
        if may_be_name and rng.random() < _NAME_RATE:
            return _Referent(self._pool_names(topic).pick(rng), "person", True)
        noun = self._pool_nouns(topic, classes).pick(rng)
        return _Referent(noun.lemma, noun.cls, False)

    def _choose_object(
        self, rng: random.Random, topic: str, verb: Verb, avoid: str
    ) -> _Referent:
        pool = self._pool_nouns(topic, verb.objects)
        for _ in range(4):
            noun = pool.pick(rng)
            if noun.lemma != avoid:
                break
        lemma = noun.lemma
        if noun.hypernym is not None and rng.random() < _HYPERNYM_RATE:
            lemma = noun.hypernym
        return _Referent(lemma, noun.cls, False)

    def _choose_props(self, rng: random.Random, topic: str, count: int) -> list[str]:
        """Recurring inanimate nouns of a document (its 'cast' of things)."""
        pool = self._pool_nouns(topic, _INANIMATE)
        props: list[str] = []
        for _ in range(4 * count):
            lemma = pool.pick(rng).lemma
            if lemma not in props:
                props.append(lemma)
                if len(props) == count:
                    break
        return props

    def _noun_phrase(
        self,
        draw: _Draw,
        referent: _Referent,
        plural: bool | None,
        slot: str,
    ) -> NounPhrase:
        if referent.proper:
            return NounPhrase(referent.lemma, "person", False, None, ())
        rng = draw.rng
        known = referent.lemma in draw.given
        if plural is None:
            plural = draw.given[referent.lemma] if known else rng.random() < _PLURAL_RATE
        if known:
            pool = _GIVEN_PLURAL_POOL if plural else _GIVEN_SINGULAR_POOL
        else:
            pool = _PLURAL_DETERMINER_POOL if plural else _SINGULAR_DETERMINER_POOL
        determiner = pool.pick(rng)
        adjectives: tuple[str, ...] = ()
        if draw.carrier == slot or rng.random() < _ADJECTIVE_RATE:
            pool = self._pool_adjectives(draw.topic, referent.cls, draw.allowed(slot))
            adjectives = (pool.pick(rng),)
        return NounPhrase(referent.lemma, referent.cls, plural, determiner, adjectives)

    # -- feasibility ----------------------------------------------------------

    def _referent(self, topic: str, word: str) -> _Referent:
        if word in self._names[topic]:
            return _Referent(word, "person", True)
        if word in _TOPIC_NOUN_LEMMAS[topic] or word in _HYPERNYM_WORDS:
            return _Referent(word, self.noun_class(word), False)
        raise ValueError(f"{word!r} is not a noun or name of topic {topic!r}")

    def _subject_classes(self, topic: str, template: str) -> frozenset[str] | None:
        key = ("subject-classes", topic, template)
        if key not in self._pools:
            lexicon = self.lexicon[topic]
            if template == COPULAR:
                classes = None
            else:
                verbs = lexicon.intransitive_verbs if template == INTRANSITIVE else lexicon.verbs
                classes = frozenset().union(*(verb.subjects for verb in verbs))
            self._pools[key] = classes
        return self._pools[key]

    def _can_be_subject(self, topic: str, template: str, subject: _Referent) -> bool:
        if template == RELATIVE and subject.proper:
            return False  # a restrictive relative clause on a name is not English
        classes = self._subject_classes(topic, template)
        return classes is None or subject.cls in classes

    def _can_act(self, topic: str, word: str) -> bool:
        return self._can_be_subject(topic, TRANSITIVE, self._referent(topic, word))

    # -- cached weighted pools --------------------------------------------------

    def _pool(self, key: tuple, build, exponent: float = 1.0) -> _Pool:
        """Cached pool of build()'s (rank, item) pairs, weighted 1/(rank+1)^exponent."""
        pool = self._pools.get(key)
        if pool is None:
            ranked = build()
            weights = [(rank + 1) ** -exponent for rank, _ in ranked]
            pool = _Pool([item for _, item in ranked], weights)
            self._pools[key] = pool
        return pool

    def _pool_names(self, topic: str) -> _Pool:
        return self._pool(("names", topic), lambda: list(enumerate(self.lexicon[topic].names)))

    def _pool_places(self, topic: str) -> _Pool:
        return self._pool(("places", topic), lambda: list(enumerate(self.lexicon[topic].places)))

    def _pool_nouns(self, topic: str, classes: frozenset[str] | None) -> _Pool:
        def build():
            nouns = enumerate(self.lexicon[topic].nouns)
            return [(r, n) for r, n in nouns if classes is None or n.cls in classes]

        return self._pool(("nouns", topic, classes), build)

    def _pool_verbs(
        self,
        topic: str,
        transitive: bool,
        subject_class: str,
        object_class: str | None,
        allowed: frozenset[int] | None,
    ) -> _Pool:
        def build():
            lexicon = self.lexicon[topic]
            verbs = lexicon.verbs if transitive else lexicon.intransitive_verbs
            return [
                (rank, verb)
                for rank, verb in enumerate(verbs)
                if subject_class in verb.subjects
                and (object_class is None or verb.takes(object_class))
                and (allowed is None or verb.polarity in allowed)
            ]

        return self._pool(("verbs", topic, transitive, subject_class, object_class, allowed), build)

    def _pick_verb(
        self, draw: _Draw, transitive: bool, subject_class: str, object_class: str | None, slot: str
    ) -> Verb:
        allowed = draw.allowed(slot)
        pool = self._pool_verbs(draw.topic, transitive, subject_class, object_class, allowed)
        if not pool:
            kind = "transitive" if transitive else "intransitive"
            raise ValueError(
                f"no {kind} verb in {draw.topic!r} for a {subject_class} subject, "
                f"object class {object_class} and polarity in {set(allowed or ())}"
            )
        return pool.pick(draw.rng)

    def _pool_adjectives(self, topic: str, cls: str, allowed: frozenset[int] | None) -> _Pool:
        def build():
            adjectives = enumerate(self.lexicon[topic].adjectives)
            return [
                (rank, adjective.lemma)
                for rank, adjective in adjectives
                if adjective.fits(cls) and (allowed is None or adjective.polarity in allowed)
            ]

        return self._pool(("adjectives", topic, cls, allowed), build)

    def _pool_adverbs(self, allowed: frozenset[int] | None) -> _Pool:
        def build():
            adverbs = enumerate(self.adverbs)
            return [(r, a) for r, a in adverbs if allowed is None or _POLARITY.get(a, 0) in allowed]


        # Adverbs are shared by every topic, so a full Zipf slope would make one dominate.
        return self._pool(("adverbs", allowed), build, exponent=0.5)


def _phrase_length(phrase: NounPhrase | None) -> int:
    if phrase is None:
        return 0
    return 1 if phrase.proper else 1 + bool(phrase.determiner) + len(phrase.adjectives)


def _length(fields: Mapping, negated: bool, marker: str | None) -> int:
    """Word count of a sentence under construction, without rendering it."""
    verb_words = (2 if fields["verb"] == "be" else 3) if negated else 1
    length = verb_words + _phrase_length(fields["subject"]) + _phrase_length(fields.get("obj"))
    if "relative_verb" in fields:
        length += 2 + _phrase_length(fields["relative_obj"])
    length += ("complement" in fields) + ("adverb" in fields) + 3 * ("place" in fields)
    if "time" in fields:
        length += len(fields["time"].split())
    if "instrument" in fields:
        length += 1 + _phrase_length(fields["instrument"])
    return length + (len(marker.split()) if marker else 0)


def _marker(rng: random.Random, index: int, count: int) -> str | None:
    """Openers only open, closers only close, so marker order signals sentence order."""
    if index == 0:
        return OPENING_MARKERS[rng.randrange(2)] if rng.random() < 0.3 else None
    if index == count - 1:
        return CLOSING_MARKERS[rng.randrange(2)] if rng.random() < 0.6 else None
    if rng.random() < 0.35:
        return MIDDLE_MARKERS[rng.randrange(len(MIDDLE_MARKERS))]
    return None


# ---------------------------------------------------------------------------
# Lexicon assembly (module level: the word lists are the same for every seed).
# ---------------------------------------------------------------------------

_SHARED_ENTRIES = dict(
    verbs=_parse_verbs(_SHARED["verbs"], transitive=True),
    intransitive=_parse_verbs(_SHARED["intransitive"], transitive=False),
    adjectives=_parse_adjectives(_SHARED["adjectives"]),
    adverbs=_parse_adverbs(_SHARED["adverbs"]),
)
_TOPIC_ENTRIES = {
    topic: dict(
        nouns=_parse_nouns(spec["nouns"]),
        verbs=_parse_verbs(spec["verbs"], transitive=True),
        intransitive=_parse_verbs(spec["intransitive"], transitive=False),
        adjectives=_parse_adjectives(spec["adjectives"]),
    )
    for topic, spec in _TOPICS.items()
}
_ALL_ENTRIES = [_SHARED_ENTRIES] + list(_TOPIC_ENTRIES.values())


def _hypernym_table() -> dict[str, str]:
    table = dict(entry.split(">") for entry in _HYPERNYMS.split())
    for entries in _TOPIC_ENTRIES.values():
        for words, parent in entries["nouns"]:
            table.update(dict.fromkeys(words, parent))
    return table


def _synonym_table() -> dict[str, tuple[str, ...]]:
    table = {}
    for entries in _ALL_ENTRIES:
        for category in entries.values():
            for words, _ in category:
                if len(words) > 1:
                    table.update({word: tuple(w for w in words if w != word) for word in words})
    return table


def _polarity_table() -> dict[str, int]:
    table = {}
    for entries in _ALL_ENTRIES:
        polar = [(words, item.polarity) for category in ("verbs", "intransitive", "adjectives")
                 for words, item in entries[category]]
        polar += entries.get("adverbs", [])
        for words, polarity in polar:
            if polarity:
                table.update(dict.fromkeys(words, polarity))
    return table


_ALL_HYPERNYMS = _hypernym_table()
_HYPERNYM_WORDS = frozenset(_ALL_HYPERNYMS.values())
_TOPIC_NOUNS = {
    topic: [
        Noun(word, _class_of(word, _ALL_HYPERNYMS), parent)
        for words, parent in entries["nouns"]
        for word in words
    ]
    for topic, entries in _TOPIC_ENTRIES.items()
}
_TOPIC_NOUN_LEMMAS = {topic: frozenset(n.lemma for n in nouns) for topic, nouns in _TOPIC_NOUNS.items()}
_SYNONYMS = _synonym_table()
_POLARITY = _polarity_table()
_ADVERBS = tuple(word for words, _ in _SHARED_ENTRIES["adverbs"] for word in words)
_SHARED_VERBS = _expand(_SHARED_ENTRIES["verbs"])
_SHARED_INTRANSITIVES = _expand(_SHARED_ENTRIES["intransitive"])
_SHARED_ADJECTIVES = _expand(_SHARED_ENTRIES["adjectives"])
_SHARED_WORDS = frozenset(
    [item.lemma for item in _SHARED_VERBS + _SHARED_INTRANSITIVES + _SHARED_ADJECTIVES]
    + list(_ADVERBS)
    + [word for entry in _HYPERNYMS.split() for word in entry.split(">")]
    + list(_HYPERNYM_WORDS)
)
_INANIMATE = _ROOT_CLASSES - {"person", "animal"}
_TOOLS = frozenset({"tool"})


def _ranked(items: list, rng: random.Random, shared: Sequence = ()) -> tuple:
    """Frequency order: topic words (shuffled) first, then shared words (shuffled).

    Shared words occur in every topic, so ranking them last keeps them from
    swamping the corpus-wide unigram distribution and keeps topics recognisable.
    """
    own, common = list(items), list(shared)
    rng.shuffle(own)
    rng.shuffle(common)
    return tuple(own + common)


def _build_topic_lexicon(topic: str, rng: random.Random) -> TopicLexicon:
    spec, entries, nouns = _TOPICS[topic], _TOPIC_ENTRIES[topic], _TOPIC_NOUNS[topic]
    verbs, intransitives = _expand(entries["verbs"]), _expand(entries["intransitive"])
    classes = {noun.cls for noun in nouns} | {"person"}  # names are always people
    # A verb belongs to a topic only if the topic has something it can act on.
    def usable(verbs: list[Verb]) -> list[Verb]:
        # objects is None (anything) or empty (intransitive) needs no object noun
        return [v for v in verbs if v.subjects & classes and (not v.objects or v.objects & classes)]

    return TopicLexicon(
        nouns=_ranked(nouns, rng),
        names=_ranked(spec["names"].split(), rng),
        verbs=_ranked(usable(verbs), rng, usable(_SHARED_VERBS)),
        intransitive_verbs=_ranked(usable(intransitives), rng, usable(_SHARED_INTRANSITIVES)),
        adjectives=_ranked(_expand(entries["adjectives"]), rng, _SHARED_ADJECTIVES),
        places=_ranked([tuple(p.split(":")) for p in spec["places"].split()], rng),
    )


def _build_vocabulary() -> frozenset[str]:
    words = set("a an not who that with is are was were do does did".split())
    words |= SINGULAR_DETERMINERS | PLURAL_DETERMINERS
    for phrase in OPENING_MARKERS + MIDDLE_MARKERS + CLOSING_MARKERS:
        words.update(phrase.split())
    for phrase in TIME_ADVERBIALS[PRESENT] + TIME_ADVERBIALS[PAST]:
        words.update(phrase.split())
    for noun in _ALL_HYPERNYMS.keys() | set(_ALL_HYPERNYMS.values()):
        words |= {noun, plural_form(noun)}
    for spec in _TOPICS.values():
        words.update(name.lower() for name in spec["names"].split())
        for place in spec["places"].split():
            words.update(place.split(":"))
    for entries in _ALL_ENTRIES:
        for verbs, _ in entries["verbs"] + entries["intransitive"]:
            for verb in verbs:
                words |= {verb, third_person_form(verb), past_form(verb)}
        for adjectives, _ in entries["adjectives"]:
            words.update(adjectives)
    words.update(_ADVERBS)
    return frozenset(words)


_VOCABULARY = _build_vocabulary()
_SINGULAR_DETERMINER_POOL = _Pool(*zip(*_SINGULAR_DETERMINERS))
_PLURAL_DETERMINER_POOL = _Pool(*zip(*_PLURAL_DETERMINERS))
_GIVEN_SINGULAR_POOL = _Pool(*zip(*_GIVEN_SINGULAR_DETERMINERS))
_GIVEN_PLURAL_POOL = _Pool(*zip(*_GIVEN_PLURAL_DETERMINERS))


@lru_cache(maxsize=8)
def _shared_language(seed: int) -> Language:
    return Language(seed)


def generate_documents(
    num_documents: int,
    seed: int = 0,
    min_sentences: int = 4,
    max_sentences: int = 12,
    *,
    language: Language | None = None,
    num_topics: int | None = None,
) -> list[Document]:
    """The default pretraining corpus: a pure, prefix-stable stream of documents.

    Document i depends only on (seed, i), so a shorter corpus is a prefix of a
    longer one.  `seed` picks documents, not words: the language defaults to
    Language(0) so downstream tasks built from Language() see the same
    vocabulary and frequencies as pretraining. `num_topics` keeps the first
    few topics only: a smaller vocabulary that a small corpus covers densely.
    """
    if num_documents < 0:
        raise ValueError("num_documents must be non-negative")
    if not 1 <= min_sentences <= max_sentences:
        raise ValueError("need 1 <= min_sentences <= max_sentences")
    language = language if language is not None else _shared_language(0)
    topics = language.topics[:num_topics] if num_topics else None
    documents = []
    for index in range(num_documents):
        rng = random.Random(f"synthetic-document:{seed}:{index}")
        documents.append(language.document(rng, rng.randint(min_sentences, max_sentences), topics))
    return documents
