"""pgvector's distance operators, the metrics they compute and the operator classes that let
an index serve them: one table for the whole app.

    operator  metric                  returns                 opclass, per type
    <=>       cosine                  1 - a.b / (|a| |b|)     {vector,halfvec,sparsevec}_cosine_ops
    <->       Euclidean (L2)          |a - b|                 {vector,halfvec,sparsevec}_l2_ops
    <#>       negative inner product  -(a.b)                  {vector,halfvec,sparsevec}_ip_ops
    <+>       taxicab (L1)            sum |a_i - b_i|         {vector,halfvec,sparsevec}_l1_ops
    <~>       Hamming                 bits that differ        bit_hamming_ops
    <%>       Jaccard                 1 - |a & b| / |a | b|   bit_jaccard_ops

An index serves `ORDER BY column <op> query` only when it was built with the operator class of
that operator for the column's type (`vector_cosine_ops` serves `<=>` on vector, not `<->`,
and not `<=>` on `embedding::halfvec` unless the index is on that expression). Smaller is
always closer: that is why inner product comes negated.

The three the lesson teaches (`METRICS`: cosine, L2, inner product) carry the words the
Distance metrics page shows; the others are here so that a catalog's opclass can be named.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One of pgvector's distance operators and how to read what it returns."""

    key: str
    label: str
    short: str  # for table headers
    operator: str
    returns: str  # what the operator's value is, in words
    score_name: str  # the number a person reads: similarity, distance, inner product
    lesson: str  # the lesson's one-line statement about it
    types: tuple[str, ...] = ("vector", "halfvec", "sparsevec")  # types with an opclass for it

    @property
    def opclass(self) -> str:
        """The operator class an index on a `vector` column needs to serve this operator."""
        return self.opclass_for(self.types[0])

    def opclass_for(self, type_: str) -> str:
        """The operator class serving this operator on `type_` (vector, halfvec, bit, …)."""
        if type_ not in self.types:
            raise ValueError(f"pgvector has no {type_} operator class for {self.operator}")
        return f"{type_}_{self.key}_ops"

    def score(self, value: float) -> float:
        """The human-readable score from the operator's value."""
        if self.key == "cosine":
            return 1.0 - value
        if self.key == "ip":
            return -value
        return value


COSINE = Metric(
    "cosine",
    "Cosine",
    "Cosine",
    "<=>",
    "cosine distance",
    "cosine similarity",
    "Cosine sees only direction: the angle between two arrows, never their length.",
)
L2 = Metric(
    "l2",
    "Euclidean (L2)",
    "L2",
    "<->",
    "L2 distance",
    "L2 distance",
    "L2 is straight distance: how far the tip of one arrow is from the tip of the other.",
)
IP = Metric(
    "ip",
    "Inner product",
    "Inner product",
    "<#>",
    "negative inner product",
    "inner product",
    "Inner product rewards length: a long arrow roughly in the right direction wins.",
)
L1 = Metric(
    "l1",
    "Taxicab (L1)",
    "L1",
    "<+>",
    "L1 distance",
    "L1 distance",
    "L1 adds up the differences coordinate by coordinate.",
)
HAMMING = Metric(
    "hamming",
    "Hamming",
    "Hamming",
    "<~>",
    "Hamming distance",
    "bits that differ",
    "Hamming counts the bits in which two bit strings differ.",
    types=("bit",),
)
JACCARD = Metric(
    "jaccard",
    "Jaccard",
    "Jaccard",
    "<%>",
    "Jaccard distance",
    "Jaccard distance",
    "Jaccard compares the sets of bits that are on.",
    types=("bit",),
)

METRICS: tuple[Metric, ...] = (COSINE, L2, IP)  # the lesson's three
ALL_METRICS: tuple[Metric, ...] = (COSINE, L2, IP, L1, HAMMING, JACCARD)
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
BY_OPERATOR: dict[str, Metric] = {m.operator: m for m in ALL_METRICS}
BY_OPCLASS: dict[str, Metric] = {m.opclass_for(t): m for m in ALL_METRICS for t in m.types}


def operator_of(opclass: str) -> str | None:
    """The operator an index built with `opclass` serves (None for an opclass not listed)."""
    metric = BY_OPCLASS.get(opclass)
    return metric.operator if metric else None
