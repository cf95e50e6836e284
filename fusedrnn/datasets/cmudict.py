"""The CMU Pronouncing Dictionary (CMUdict) for grapheme-to-phoneme conversion.

A copy of CMUdict ships in datasets/data/cmudict (with its BSD-style licence). Each line reads
`word PHONE PHONE ...`; alternate pronunciations are written `word(2)`, `word(3)`, ...; `#` starts
a comment (to the end of the line). Phones are ARPAbet, vowels carrying a stress digit 0/1/2.

`load_cmudict` groups every pronunciation of a word under the word. With stress=False (the
default used by the g2p task) the stress digits are removed, so `AH0` and `AH1` are one phone
(39 phones instead of 84 phone+stress symbols), and pronunciations that then coincide are kept
once. `split_words` divides the DISTINCT words, so all pronunciations of a word land on the
same side of the split.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from .files import open_text

_ALTERNATE = re.compile(r"^(.+)\((\d+)\)$")

# The 39 ARPAbet phones of CMUdict (datasets/data/cmudict/cmudict.phones); vowels may carry a stress
# digit 0/1/2, which gives the 84 symbols of cmudict.symbols.
VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
CONSONANTS = frozenset("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
PHONES = VOWELS | CONSONANTS
SYMBOLS = PHONES | {v + digit for v in VOWELS for digit in "012"}

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


def default_path() -> Path:
    """The copy of cmudict.dict.gz inside the installed package."""
    return Path(str(resources.files("fusedrnn.datasets").joinpath("data/cmudict/cmudict.dict.gz")))


def strip_stress(phone: str) -> str:
    """'AH0' -> 'AH'; phones without a stress digit are returned unchanged."""
    return phone.rstrip("012")


def parse_cmudict(lines: Iterable[str], stress: bool = False,
                  source: str = "CMUdict") -> dict[str, list[tuple[str, ...]]]:
    """{word: [pronunciation, ...]} from CMUdict lines, in file order.

    Comments (`#` to the end of the line, and cmudict-0.7b's `;;;` lines) and blank lines are
    skipped; `word(2)` is an alternate
    pronunciation of `word`. Words are lower-cased. Duplicate pronunciations of a word (after
    stripping stress when stress=False) are kept once. Every phone must be one of SYMBOLS (an
    ARPAbet phone, vowels with an optional stress digit 0/1/2), case aside; a malformed line
    raises a ValueError naming `source` (e.g. the file) and the line number.
    """
    entries: dict[str, list[tuple[str, ...]]] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(";;;"):  # ';;;' comment lines are cmudict-0.7b's
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{source} line {number}: expected 'word PHONE ...', got {raw.strip()!r}")
        bad = [p for p in parts[1:] if p.upper() not in SYMBOLS]
        if bad:
            raise ValueError(f"{source} line {number}: unknown phone(s) {', '.join(map(repr, bad))} in "
                             f"{raw.strip()!r}; expected ARPAbet phones ({' '.join(sorted(PHONES))}), "
                             "vowels with an optional stress digit 0/1/2")
        word = parts[0].lower()
        match = _ALTERNATE.match(word)
        if match:
            word = match.group(1)
        phones = tuple(p.upper() if stress else strip_stress(p.upper()) for p in parts[1:])
        prons = entries.setdefault(word, [])
        if phones not in prons:
            prons.append(phones)
    return entries


def load_cmudict(path: str | os.PathLike | None = None,
                 stress: bool = False) -> dict[str, list[tuple[str, ...]]]:
    """Read CMUdict (plain or .gz; the shipped copy when path is None); see parse_cmudict.

    A damaged file (truncated or not gzip, not UTF-8), a malformed line, or a file without a
    single entry raises a ValueError naming the path.
    """
    path = Path(path) if path is not None else default_path()
    with open_text(path) as f:
        entries = parse_cmudict(f, stress=stress, source=str(path))
    if not entries:
        raise ValueError(f"no entries in {path}: expected lines 'word PHONE PHONE ...'")
    return entries


def split_words(words: Iterable[str], seed: int = 0,
                fractions: Sequence[float] = (0.9, 0.05, 0.05)) -> dict[str, list[str]]:
    """Split distinct words into {'train', 'valid', 'test'} lists, deterministically for a seed.

    The words are sorted, shuffled by a random.Random(seed), then cut at the cumulative fractions
    (valid and test get the rounded shares, train the rest). Each list is returned sorted.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative shares summing to 1, got {fractions}")
    unique = sorted(set(words))
    random.Random(seed).shuffle(unique)
    n = len(unique)
    n_valid, n_test = round(n * fractions[1]), round(n * fractions[2])
    n_train = n - n_valid - n_test
    return {
        "train": sorted(unique[:n_train]),
        "valid": sorted(unique[n_train:n_train + n_valid]),
        "test": sorted(unique[n_train + n_valid:]),
    }


class Vocab:
    """Symbols <-> ids, with <pad>=0, <s>=1, </s>=2, <unk>=3 first."""

    def __init__(self, symbols: Iterable[str]):
        extra = sorted(set(symbols) - set(SPECIALS))
        self.itos: list[str] = [*SPECIALS, *extra]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad, self.bos, self.eos, self.unk = (self.stoi[s] for s in SPECIALS)

    @classmethod
    def from_list(cls, itos: Sequence[str]) -> Vocab:
        """Rebuild exactly the vocabulary whose `itos` was saved (e.g. in a checkpoint)."""
        vocab = cls(())
        vocab.itos = list(itos)
        vocab.stoi = {s: i for i, s in enumerate(vocab.itos)}
        vocab.pad, vocab.bos, vocab.eos, vocab.unk = (vocab.stoi[s] for s in SPECIALS)
        return vocab

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, symbols: Iterable[str]) -> list[int]:
        return [self.stoi.get(s, self.unk) for s in symbols]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Symbols for ids, stopping at </s> and dropping <pad>/<s>."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i in (self.pad, self.bos):
                continue
            out.append(self.itos[i])
        return out


def vocabularies(entries: dict[str, list[tuple[str, ...]]]) -> tuple[Vocab, Vocab]:
    """(graphemes, phonemes): every character of the words and every phone of the entries."""
    chars = {c for word in entries for c in word}
    phones = {p for prons in entries.values() for pron in prons for p in pron}
    return Vocab(chars), Vocab(phones)


def pairs(entries: dict[str, list[tuple[str, ...]]], words: Iterable[str]) -> list[tuple[str, tuple]]:
    """(word, pronunciation) training pairs: one per pronunciation of each word."""
    return [(w, pron) for w in words for pron in entries[w]]
