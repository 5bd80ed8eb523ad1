"""The batch engine streams: sources are read lazily and decoding runs a bounded window ahead."""
from PIL import Image

from facecheck import engine

from conftest import SAMPLES


def test_decoding_runs_at_most_a_bounded_window_ahead(tmp_path):
    with Image.open(SAMPLES / "coffee.jpg") as im:
        base = im.convert("RGB").resize((96, 64))
    paths = []
    for i in range(48):
        paths.append(tmp_path / f"{i}.png")
        base.rotate(i).save(paths[-1])
    settings = engine.Settings(workers=2, batch_size=2)
    pulled = 0

    def tasks():
        nonlocal pulled
        for p in paths:
            pulled += 1
            yield p, p.name

    consumed, most_ahead = 0, 0
    for prepared in engine._prepared_stream(tasks(), settings):
        consumed += 1
        most_ahead = max(most_ahead, pulled - consumed)
        assert prepared.result.error is None
    assert consumed == 48
    assert most_ahead <= engine.IN_FLIGHT_PER_WORKER * 2 < 48


def test_scan_reads_sources_from_a_generator(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("account_a.png", "rocket.jpg", "not_an_image.jpg"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    summary = engine.run_scan(engine.walk(folder), tmp_path / "out", engine.Settings(workers=0), folder=folder)
    assert (summary.files, summary.scanned, summary.errors) == (3, 3, 1)
    rows = list(engine.read_results(tmp_path / "out"))
    assert [r.path for r in rows] == ["account_a.png", "not_an_image.jpg", "rocket.jpg"]
    assert rows[1].verdict == "error" and rows[1].gan_score is None


def test_a_model_failure_ends_the_scan_with_its_error(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i}.png").write_bytes((SAMPLES / "account_a.png").read_bytes())

    def fail(self, batch):
        raise RuntimeError("model failed")

    monkeypatch.setattr(engine.Analyzer, "analyze", fail)
    import pytest
    with pytest.raises(RuntimeError, match="model failed"):
        engine.run_scan(engine.walk(folder), tmp_path / "out", engine.Settings(workers=2, batch_size=4))
