"""What the library returns, as plain Python values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

@dataclass(frozen=True)
class Prediction:
    """The classifier's verdict on one function (the fields of the Rust ``Prediction``)."""

    label: int
    """Index of the highest logit."""
    label_name: str
    """That label's name from the checkpoint's ``id2label``."""
    insecure_probability: float
    """Probability that the function is insecure."""
    logits: List[float]
    """Raw logits, one per label."""
    tokens: int
    """Tokens fed to the model, ``<s>`` and ``</s>`` included."""
    truncated: bool
    """Whether the input was cut to ``max_tokens``."""


@dataclass(frozen=True)
class TokenScore:
    """One token's share of the last layer's attention from ``<s>``."""

    id: int
    """The token id."""
    byte_range: Optional[Tuple[int, int]]
    """The bytes ``[start, end)`` of the UTF-8 code it came from; None for the ``<s>``
    and ``</s>`` around the input."""
    line: Optional[int]
    """The line (from 1) of its first byte that is not whitespace; None for ``<s>``,
    ``</s>`` and whitespace tokens."""
    score: float
    """The mean over heads of the attention probability from ``<s>`` to it."""


@dataclass(frozen=True)
class LineScore:
    """A line's score: the sum of its tokens' scores."""

    line: int
    score: float


@dataclass(frozen=True)
class Explanation:
    """A prediction and where the model looked (the Rust ``Explanation``)."""

    prediction: Prediction
    tokens: List[TokenScore]
    """Every token fed to the model, ``<s>`` and ``</s>`` included, in order."""
    line_scores: List[LineScore]
    """Every line that received a score, in line order."""

    @property
    def token_scores(self) -> List[float]:
        """Each token's score, in token order (they sum to 1)."""
        return [t.score for t in self.tokens]

    def top_lines(self, k: int = 3) -> List[LineScore]:
        """The ``k`` lines with the highest scores, highest first."""
        return sorted(self.line_scores, key=lambda l: (-l.score, l.line))[:k]


@dataclass(frozen=True)
class WindowedPrediction:
    """A long function's verdict: the window most likely insecure (the Rust
    ``WindowedPrediction``)."""

    prediction: Prediction
    """That window's prediction."""
    byte_range: Tuple[int, int]
    """The bytes ``[start, end)`` of the UTF-8 code that the window covers."""
    windows: int
    """Windows classified."""


@dataclass(frozen=True)
class Function:
    """A function definition :func:`find_functions` found (the Rust ``FunctionSpan``)."""

    name: str
    """Its name as written: ``foo``, ``Class::method``, ``operator==``, ``<anonymous>``."""
    start_line: int
    """First line (from 1), return type and template header included."""
    end_line: int
    """Last line (inclusive)."""
    byte_range: Tuple[int, int]
    """Its bytes ``[start, end)`` in the UTF-8 source."""
    code: str
    """Its text: what to classify."""
    suppressed: bool
    """A comment holding ``icd: ignore`` is on its first line or the line before it."""
    fingerprint: str
    """A hash of its name and text without comments or whitespace, then ``:N`` among
    equal ones in the source: the same across moves and edits elsewhere (``icd scan``'s)."""
    file: Optional[str] = None
    """Its file, from :func:`find_functions_under` (as the walk found it; each byte that is
    not UTF-8 written ``\\xHH``, and in such a name, or one holding ``\\x``, each backslash
    doubled)."""
    language: Optional[str] = None
    """``"c"`` or ``"cpp"``: how it was parsed."""


@dataclass(frozen=True)
class Gap:
    """A part of a tree that was not covered: a file not read (a link, not a regular
    file, unreadable, too large, binary) or lines that could not be parsed."""

    file: str
    message: str
    """What was not covered, in one line, as ``icd scan`` reports it."""


@dataclass(frozen=True)
class Source:
    """A C or C++ file a scan reads: listed by :func:`list_sources`, read by
    :func:`find_functions_in_sources` (in this process or another)."""

    path: bytes
    """The path's bytes, as the walk found it or the caller named it."""
    language: str
    """``"c"`` or ``"cpp"``: how it is parsed."""
    named: bool
    """Named by the caller: a failure to read it raises rather than being a gap."""


@dataclass(frozen=True)
class SourceListing:
    """What :func:`list_sources` found."""

    sources: List[Source]
    """The files to read, in the order :func:`find_functions_under` reads them."""
    gaps: List[Gap]
    """Files found that will not be read (links, not regular files)."""


@dataclass(frozen=True)
class SourceTree:
    """What :func:`find_functions_under` found."""

    functions: List[Function]
    """Every definition, file by file, in source order within a file."""
    gaps: List[Gap]
    """What could not be covered, by file."""


@dataclass(frozen=True)
class Finding:
    """One function of a :meth:`Detector.scan` and its prediction."""

    function: Function
    prediction: Prediction

    @property
    def file(self) -> str:
        return self.function.file or ""

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def start_line(self) -> int:
        return self.function.start_line

    @property
    def end_line(self) -> int:
        return self.function.end_line


class NotScannedWarning(UserWarning):
    """:meth:`Detector.scan` could not cover a part of the tree (a :class:`Gap`)."""
