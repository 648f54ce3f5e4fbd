"""lib/core/kept.py: a few values by key, the least recently asked going first."""

from lib.core.kept import Kept


def test_kept_holds_at_most_its_size_and_lets_the_least_recently_asked_go():
    kept = Kept(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # now "b" is the least recently asked
    kept.put("c", 3)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (1, None, 3)
    assert len(kept) == 2
