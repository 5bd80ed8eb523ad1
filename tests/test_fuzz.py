"""A short seeded run of the loader fuzzer (benchmarks/fuzz_loader.py; the long run is that script):
every mutated JPEG, PNG, GIF, WebP, TIFF and BMP gives a decoded image or a clear LoadError, quickly,
and nothing is printed on the terminal."""
from __future__ import annotations

from benchmarks.fuzz_loader import mutate, run, seed_files


def test_seeds_cover_every_format_and_decode():
    from facecheck.loading import decode
    seeds = seed_files()
    assert {name.split("_")[0] for name in seeds} == {"jpeg", "png", "gif", "webp", "tiff", "bmp"}
    for name, data in seeds.items():
        assert decode(data).width > 0, name


def test_mutations_are_seeded():
    import random
    data = seed_files()["png_rgb"]
    first = [mutate(data, random.Random(7), data) for _ in range(3)]
    again = [mutate(data, random.Random(7), data) for _ in range(3)]
    assert first == again


def test_short_fuzz_run_finds_no_crash_no_hang_and_prints_nothing(capfd):
    report = run(cases=1500, seed=1, slow=2.0)
    assert report.cases == 1500
    assert not report.failures, [f[:4] for f in report.failures[:5]]
    assert sum(report.errors.values()) > 500 and report.decoded > 100   # the mutations do reach the decoders
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == "", (captured.err[:500], captured.out[:500])
