"""RULER-style synthetic long-context samples, generated offline and deterministically from real text.

The task formats follow RULER (Hsieh et al., arXiv:2404.06654, its synthetic
tasks) as The Sparse Frontier (Nawrot et al., arXiv:2504.17768) uses them to
compare sparse prefill and sparse decode; the haystacks are Python's own
documentation prose (``pydoc_data.topics``, on every Python install) instead
of Paul Graham's essays, or the stdlib sources (``haystack="code"``):

- ``niah_single``: one needle "One of the special magic numbers for <key> is:
  <7-digit number>." hidden in the haystack; the key is asked for.
- ``niah_multikey``: four needles with different keys, one asked for (the
  other three are distractors; RULER's niah_multikey_1).
- ``niah_multivalue``: four needles with the same key, all four values asked for.
- ``niah_multiquery``: four needles with different keys, all four asked for.
- ``vt`` (variable tracking): one chain of 4 hops "VAR A = 12345", "VAR B = VAR A", ...
  spread over the haystack; all 5 variables holding the value are asked for.
- ``cwe`` (common-word extraction): a numbered list of words in which 10 words
  appear 30 times (10 below 4000 tokens) and every other word 3 times; the 10 common words are asked for.
- ``fwe`` (frequent-word extraction): coded words drawn from a Zipf
  distribution (alpha 2) joined by " .... "; the 3 most frequent are asked for.

Every prompt ends with RULER's answer prefix, so the model's greedy
continuation is the answer. Scoring is RULER's ``string_match_all``: a sample
scores the share of its answers that occur (case-insensitively) in the
generated text. Randomness comes only from ``random.Random`` seeded with a
string of (seed, kind, sample index), so the same seed gives the same token
ids on every machine with the same Python (the haystack text is part of it).

Prompts of the needle tasks are exactly ``length`` tokens (filler cut to fit);
cwe and fwe prompts hold as many list items as fit in ``length`` tokens.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

KINDS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe")

# generous token caps per kind (greedy generation stops early at EOS or once every answer is present:
# string_match_all cannot drop when more text is generated, so stopping then changes no score)
MAX_NEW_TOKENS = {"niah_single": 32, "niah_multikey": 32, "niah_multivalue": 64, "niah_multiquery": 64,
                  "vt": 32, "cwe": 64, "fwe": 24}

NIAH_INTRO = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. "
              "I will quiz you about the numbers afterwards.\n")
NIAH_NEEDLE = "\nOne of the special magic numbers for {key} is: {value}.\n"
# one value asked for: the singular question (RULER asks "What are all ... are" for every niah task; SmolLM2-135M
# answers that by repeating the question, and answers the singular form at once)
NIAH_QUESTION_ONE = ("\nWhat is the special magic number for {query} mentioned in the provided text? "
                     "The special magic number for {query} mentioned in the provided text is")
NIAH_QUESTION = ("\nWhat are all the special magic numbers for {query} mentioned in the provided text? "
                 "The special magic numbers for {query} mentioned in the provided text are")
VT_INTRO = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
VT_QUESTION = ("\nQuestion: Find all variables that are assigned the value {value} in the text above. "
               "Answer: According to the chain(s) of variables assignment in the text above, {n} variables "
               "are assigned the value {value}, they are:")
CWE_INTRO = ("Below is a numbered list of words. In these words, some appear more often than others. "
             "Memorize the ones that appear most often.\n")
CWE_QUESTION = ("\nQuestion: What are the 10 most common words in the above list? "
                "Answer: The top 10 words that appear most often in the list are:")
FWE_INTRO = ("Read the following coded text and track the frequency of each coded word. "
             "Find the three most frequently appeared coded words.\n")
FWE_QUESTION = ("\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three "
                "most frequently appeared words in the above coded text? Answer: According to the coded text "
                "above, the three most frequently appeared words are:")


@dataclass(frozen=True)
class Sample:
    id: str
    ids: list[int]  # the prompt's token ids (ends with the answer prefix)
    answers: list[str]  # every string the answer must contain
    chance: float  # expected score of a guess from what the prompt offers (see chance_of)


def prose_texts() -> list[str]:
    """Python's documentation prose (the reference manual topics shipped with pydoc), in a fixed order."""
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


def vocabulary(texts) -> list[str]:
    """Distinct lowercase words of 5-10 letters in ``texts``, sorted: the word pool of keys and lists."""
    words = set()
    for text in texts:
        words.update(w for w in re.findall(r"\b[a-z]{5,10}\b", text))
    return sorted(words)


def string_match_all(prediction: str, answers: list[str]) -> float:
    """RULER's score: the share of ``answers`` found (case-insensitively) in ``prediction``."""
    low = prediction.lower()
    return sum(a.lower() in low for a in answers) / len(answers)


class Generator:
    """Builds samples of one kind at one prompt length from a tokenizer and a haystack token stream."""

    def __init__(self, tokenizer, haystack: list[int], words: list[str], seed: int):
        if len(words) < 200:
            raise ValueError(f"the word pool has {len(words)} words; at least 200 are needed")
        self.tok = tokenizer
        self.haystack = haystack
        self.words = words
        self.seed = seed
        # positions right after a newline token: needles go there, never inside a word
        self._breaks = [i + 1 for i, t in enumerate(haystack) if "\n" in tokenizer.decode([t])]

    def enc(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def rng(self, kind: str, i: int) -> random.Random:
        return random.Random(f"sparsebench-ruler/{self.seed}/{kind}/{i}")

    def samples(self, kind: str, length: int, n: int) -> list[Sample]:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
        build = getattr(self, "_cwe" if kind == "cwe" else "_fwe" if kind == "fwe" else
                        "_vt" if kind == "vt" else "_niah")
        return [build(kind, length, i) for i in range(n)]

    # -- needle tasks: needles at spread depths of a real-text haystack ------------------------------------
    def _haystack_with(self, rng: random.Random, intro: list[int], needles: list[list[int]],
                       question: list[int], length: int) -> list[int]:
        filler_len = length - len(intro) - len(question) - sum(map(len, needles))
        if filler_len < 64 * len(needles):
            raise ValueError(f"length={length} leaves {filler_len} filler tokens; too short for this task")
        if filler_len > len(self.haystack):
            raise ValueError(f"length={length} needs {filler_len} haystack tokens; the haystack has "
                             f"{len(self.haystack)}")
        start = rng.randrange(len(self.haystack) - filler_len + 1)
        filler = self.haystack[start : start + filler_len]
        breaks = [b - start for b in self._breaks if start < b < start + filler_len] or [filler_len // 2]
        # depths spread evenly (RULER's evenly spaced depths), jittered within the sample's share
        cuts = []
        for j in range(len(needles)):
            depth = int(filler_len * (j + rng.random()) / len(needles))
            cuts.append(min(breaks, key=lambda b: (abs(b - depth), b)))
        out, prev = list(intro), 0
        for cut, needle in sorted(zip(cuts, needles), key=lambda cn: cn[0]):
            out += filler[prev:cut] + needle
            prev = cut
        return out + filler[prev:] + question

    def _key(self, rng: random.Random, used: set) -> str:
        while True:
            key = f"{rng.choice(self.words)}-{rng.choice(self.words)}"
            if key not in used:
                used.add(key)
                return key

    def _niah(self, kind: str, length: int, i: int) -> Sample:
        rng = self.rng(kind, i)
        used: set = set()
        n_keys = 1 if kind in ("niah_single", "niah_multivalue") else 4
        keys = [self._key(rng, used) for _ in range(n_keys)]
        values: set = set()
        pairs = []  # (key, value) per needle
        for key in keys:
            for _ in range(4 if kind == "niah_multivalue" else 1):
                value = rng.randrange(1_000_000, 10_000_000)
                while value in values:
                    value = rng.randrange(1_000_000, 10_000_000)
                values.add(value)
                pairs.append((key, str(value)))
        rng.shuffle(pairs)
        if kind == "niah_multiquery":
            asked = keys
            query = ", ".join(keys[:-1]) + ", and " + keys[-1]
        else:
            asked = [keys[0]]
            query = keys[0]
        answers = [v for k, v in pairs if k in asked]
        # a guess among the needles' values (the only 7-digit numbers offered) is right with this chance
        chance = len(answers) / len(pairs) if kind == "niah_multikey" else 0.0
        ids = self._haystack_with(rng, self.enc(NIAH_INTRO),
                                  [self.enc(NIAH_NEEDLE.format(key=k, value=v)) for k, v in pairs],
                                  self.enc((NIAH_QUESTION_ONE if len(answers) == 1 else NIAH_QUESTION)
                                           .format(query=query)), length)
        return Sample(f"{kind}-{length}-{i}", ids, answers, chance)

    def _vt(self, kind: str, length: int, i: int) -> Sample:
        rng = self.rng(kind, i)
        names: list[str] = []
        while len(names) < 5:
            name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
            if name not in names:
                names.append(name)
        value = str(rng.randrange(10_000, 100_000))
        chain = [f"\nVAR {names[0]} = {value}\n"] + [f"\nVAR {names[j]} = VAR {names[j - 1]}\n" for j in range(1, 5)]
        ids = self._haystack_with(rng, self.enc(VT_INTRO), [self.enc(c) for c in chain],
                                  self.enc(VT_QUESTION.format(value=value, n=len(names))), length)
        return Sample(f"{kind}-{length}-{i}", ids, names, 0.0)

    # -- aggregation tasks: the whole context is the list ---------------------------------------------------
    def _fit(self, build, length: int, low: int, high: int):
        """The largest size in [low, high] whose prompt fits ``length`` tokens (sizes grow the prompt)."""
        best = None
        while low <= high:
            mid = (low + high) // 2
            sample = build(mid)
            if len(sample.ids) <= length:
                best, low = sample, mid + 1
            else:
                high = mid - 1
        if best is None:
            raise ValueError(f"length={length} is too short for the smallest list of this task")
        return best

    def _cwe(self, kind: str, length: int, i: int) -> Sample:
        rng = self.rng(kind, i)
        pool = rng.sample(self.words, min(len(self.words), 4000))
        common, rare_pool = pool[:10], pool[10:]
        order_seed = rng.random()
        # RULER's frequencies (30 and 3); 300 common items take ~2.1k tokens, so shorter lists repeat them 10 times
        freq = 30 if length >= 4000 else 10

        def build(n_rare: int) -> Sample:
            items = common * freq + rare_pool[:n_rare] * 3
            random.Random(order_seed).shuffle(items)
            body = "".join(f"{j + 1}. {w}\n" for j, w in enumerate(items))
            ids = self.enc(CWE_INTRO) + self.enc(body) + self.enc(CWE_QUESTION)
            # guessing 10 distinct listed words uniformly hits this share of the common ones
            return Sample(f"{kind}-{length}-{i}", ids, list(common), 10 / (10 + n_rare))

        return self._fit(build, length, 0, len(rare_pool))

    def _fwe(self, kind: str, length: int, i: int) -> Sample:
        rng = self.rng(kind, i)
        coded: list[str] = []
        while len(coded) < 1000:
            w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
            if w not in coded:
                coded.append(w)
        weights = [1.0 / (r + 1) ** 2.0 for r in range(len(coded))]  # Zipf, alpha 2 (RULER's default)
        draw_seed = rng.random()

        def build(n_words: int) -> Sample:
            draws = random.Random(draw_seed).choices(coded, weights=weights, k=n_words)
            counts = {w: draws.count(w) for w in set(draws)}
            ranked = sorted(counts, key=lambda w: (-counts[w], w))
            top = ranked[:3]
            ids = self.enc(FWE_INTRO) + self.enc(" .... ".join(draws)) + self.enc(FWE_QUESTION)
            return Sample(f"{kind}-{length}-{i}", ids, top, 3 / max(len(counts), 3))

        sample = self._fit(build, length, 8, length)
        return sample
