"""Grouping a whole scan's files (facecheck.grouping): right groups, and memory that does not grow
with the number of files beyond a few bytes each (a bound, not a timing)."""
import tracemalloc

import numpy as np

from benchmarks.bench_grouping import SyntheticFiles
from facecheck.grouping import UnionFind, group_files


def grouped(n: int):
    source = SyntheticFiles(n, copies_every=10, seed=3)
    return source, group_files(source.ids(), source.codes(), source.chunks(), source.thumbnail)


def test_planted_copies_group_and_nothing_else_does():
    source, groups = grouped(3000)
    assert groups.count() == source.planted_pairs
    for copy in np.flatnonzero(source.copy):
        assert groups.group_of(int(copy)) == groups.group_of(int(copy) - 1)
        assert groups.group_of(int(copy))[1] == 2
    assert groups.group_of(0) is None and groups.group_of(10 ** 9) is None
    # numbered 1, 2, ... in the order they are first asked for
    numbers = [groups.group_of(int(c))[0] for c in np.flatnonzero(source.copy)]
    assert numbers == list(range(1, len(numbers) + 1))


def peak_bytes_while_grouping(n: int) -> int:
    source = SyntheticFiles(n, copies_every=10, seed=3)
    ids, codes = source.ids(), source.codes()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        group_files(ids, codes, source.chunks(), source.thumbnail)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_grouping_memory_grows_by_a_few_bytes_per_file_at_most():
    """Four times the files may cost at most 64 bytes more per added file: numpy arrays of a few bytes
    per file (positions, roots, sizes), never a Python object per file, which costs 100 bytes or more.
    (A million files then need tens of MB; benchmarks/bench_grouping.py measures RSS at 100k and 1M.)"""
    small, large = peak_bytes_while_grouping(2000), peak_bytes_while_grouping(8000)
    per_file = (large - small) / 6000
    assert per_file <= 64, f"grouping memory grows by {per_file:.0f} bytes per file"


def test_union_find_roots_are_each_sets_smallest_member():
    sets = UnionFind(8)
    for a, b in ((5, 3), (3, 7), (1, 6)):
        sets.union(a, b)
    assert sets.roots().tolist() == [0, 1, 2, 3, 4, 3, 1, 3]
    assert sets.find(7) == 3
