"""DIR/report.html: built from a real scan, self-contained, escaped, bounded, and rendered by Chromium."""
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecheck import engine
from facecheck.dataset import data_root
from facecheck.report import ReportBuilder, write_report
from facecheck.result import Result

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "avatars"
ASTRONAUT = ["account_a.png", "account_b/profile.jpg", "account_c.jpg", "account_d.jpg", "account_e.webp"]
# A '/' cannot be in a file name, but it can be in a path: folder "<script>alert(1)<", file "script>.png".
HOSTILE = "<script>alert(1)</script>.png"
HOSTILE_ATTR = '"><img src=x onerror=alert(1)>.jpg'
STYLEGAN_COPIES = 6


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real scan of samples/avatars plus two hostile file names and, where ../shared/data is
    present, a few StyleGAN images; then the report built from its results.jsonl."""
    root = tmp_path_factory.mktemp("report")
    folder, out = root / "avatars", root / "out"
    shutil.copytree(SAMPLES, folder)
    (folder / HOSTILE).parent.mkdir()
    shutil.copyfile(SAMPLES / "coffee.jpg", folder / HOSTILE)
    shutil.copyfile(SAMPLES / "rocket.jpg", folder / HOSTILE_ATTR)
    data = data_root()
    stylegan = []
    if data is not None:
        source = sorted((data / "images" / "stylegan").rglob("*.jpg"))[:STYLEGAN_COPIES]
        (folder / "stylegan").mkdir()
        for path in source:
            shutil.copyfile(path, folder / "stylegan" / path.name)
            stylegan.append(f"stylegan/{path.name}")
    summary = engine.run_scan(list(engine.walk(folder)), out, engine.Settings(workers=0))
    results = list(engine.read_results(out))
    paths = {r.path for r in results}
    assert {HOSTILE, HOSTILE_ATTR, *ASTRONAUT, *stylegan} <= paths
    # The fused verdict is still being built, so a scan may not set verdict "gan" yet. To exercise the
    # flagged-face section, rows of the StyleGAN copies (or, without ../shared/data, of the astronaut
    # photo) are marked here as flagged, keeping any verdict and gan_score the scan did set.
    to_flag = set(stylegan) or {"account_a.png", "account_d.jpg"}
    for r in results:
        if r.path in to_flag and r.verdict != "gan":
            r.verdict = "gan"
            r.gan_score = r.gan_score if r.gan_score is not None else r.eye_score
    # An old row without gan_score whose file has gone: a placeholder, "n/a" for the score.
    results.append(Result(path="gone/missing.jpg", width=512, height=512, verdict="gan",
                          eyes=[[192.0, 245.0], [320.0, 245.0]], reasons=["eyes 0.1% of the width from the "
                                                                          "StyleGAN template positions"]))
    settings = {"device": "cpu", "mode": "default", "workers": 0, "versions": {"facecheck": "test"}}
    written = write_report(out, iter(results), folder=folder, settings=settings,
                           summary={k: getattr(summary, k) for k in summary.__dataclass_fields__})
    return {"path": written, "out": out, "html": written.read_text(encoding="utf-8"),
            "flagged": sorted(to_flag) + ["gone/missing.jpg"], "results": results}


def test_report_is_self_contained_escaped_and_complete(report):
    page, path = report["html"], report["path"]
    assert path == report["out"] / "report.html" and path.is_file()
    assert not list(report["out"].glob(".report.html*")), "temporary file left behind"
    # No network: no URL at all, and every image is embedded.
    for needle in ("http://", "https://", 'src="//', "src='//", "url("):
        assert needle not in page.lower(), needle
    tags = re.findall(r"<[A-Za-z][^>]*>", page)   # markup only: escaped text has no raw '<'
    sources = [m for tag in tags for m in re.findall(r"\ssrc\s*=\s*[\"']?([^\"'\s>]*)", tag, flags=re.I)]
    assert len(sources) >= 10
    assert all(re.fullmatch(r"data:image/(jpeg|png);base64,[A-Za-z0-9+/=]+", s) for s in sources), \
        [s[:40] for s in sources if not s.startswith("data:")]
    assert len(re.findall(r"<img\b", page, flags=re.I)) == len(sources)
    # Hostile file names are shown, escaped, never as markup.
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in page
    assert HOSTILE_ATTR not in page and "onerror" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.jpg" in page
    # The astronaut reposts are one gallery, and no other gallery holds any of them.
    groups = page.split('<div class="group">')[1:]
    holding = [g for g in groups if any(f"class=\"path\">{p}" in g for p in ASTRONAUT)]
    assert len(holding) == 1 and all(f"class=\"path\">{p}" in holding[0] for p in ASTRONAUT)
    assert "5 files" in holding[0]
    # Flagged faces: path, scores, reasons, the template drawn over them; the missing file has a placeholder.
    flagged = page.split('id="flagged"')[1].split('id="average"')[0]
    for p in report["flagged"]:
        assert f">{p}<" in flagged
    assert flagged.count('<div class="card">') == len(report["flagged"])
    assert flagged.count('class="overlay"') == len(report["flagged"]) - 1
    assert "image not available" in flagged and "n/a" in flagged
    assert "gan_score" in flagged and "spectral_score" in flagged and "StyleGAN template positions" in flagged
    # Average face, heatmap with the template markers, counts and settings.
    assert 'alt="average of the flagged faces"' in page and 'alt="heatmap of eye positions"' in page
    assert page.split('id="heatmap"')[1].count('class="tpl"') >= 2
    assert "Files in the folder" in page and "Settings used" in page and "&quot;facecheck&quot;: &quot;test&quot;" in page
    assert "not_an_image.jpg" in page.split('id="errors"')[1]


def test_report_memory_is_bounded_and_says_what_was_left_out(tmp_path):
    """Many synthetic rows (no image files): only the limits' worth is kept, the largest groups win,
    the highest gan_score wins, and the page points to results.jsonl for the rest."""
    from facecheck.geometry import EyeTemplate
    builder = ReportBuilder(None, EyeTemplate.load(), max_flagged=5, max_groups=3, max_members=2,
                            max_listed=4, max_average=10)
    sizes = {c: 2 + (c * 7) % 11 for c in range(1, 40)}   # groups of 2..12 files
    rows = []
    for c, size in sizes.items():
        rows += [Result(path=f"g{c}/{i}.jpg", cluster=c, cluster_size=size, verdict="real") for i in range(size)]
    rows += [Result(path=f"f{i}.jpg", verdict="gan", gan_score=(i * 37 % 100) / 100, width=100, height=100,
                    eyes=[[37.5, 47.8], [62.5, 47.8]]) for i in range(200)]
    rows += [Result(path=f"old{i}.jpg", verdict="gan", gan_score=None) for i in range(20)]
    rows += [Result(path=f"e{i}.jpg", verdict="error", error="not an image") for i in range(9)]
    random.Random(0).shuffle(rows)   # any order
    for r in rows:
        builder.add(r)
    assert len(builder._flagged_heap) == 5 and builder.flagged == 220
    assert sorted(k[0] for k in builder._flagged_heap) == [0.97, 0.98, 0.98, 0.99, 0.99]
    top3 = sorted(sizes.values(), reverse=True)[:3]
    assert sorted((g.size for g in builder._groups.values()), reverse=True) == top3
    assert all(len(g.members) == 2 for g in builder._groups.values())
    assert len(builder.error_list) == 4 and builder.errors == 9
    assert builder.hist.sum() == 400 and builder.on_template == 200
    assert builder.avg_count == builder.avg_tried == 0   # no folder: nothing to average
    page = builder.html({"mode": "default"}, {})
    assert "Showing 5 of 220 flagged faces" in page and "Showing 3 of 39 groups" in page
    assert "results.jsonl" in page and "cluster = " in page
    assert page.count("image not available") == 5 + 3 * 2


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (Debian: apt-get install chromium): render test skipped")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2400",
           report["path"].resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot; chromium said: {proc.stderr[-2000:]}"
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 20, "screenshot is blank"
    # Pictures were drawn (a text-only page is nearly all grey levels): many strongly coloured pixels.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 60).mean() > 0.01
