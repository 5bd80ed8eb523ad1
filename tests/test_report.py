"""DIR/report.html: built from a real scan, self-contained, escaped, bounded, and rendered by Chromium."""
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecheck.pipeline.run import run_scan
from facecheck.pipeline.walk import walk
from facecheck.settings import Settings
from facecheck.writers import read_results
from facecheck.evaluation.dataset import data_root
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
    summary = run_scan(list(walk(folder)), out, Settings(workers=0))
    results = list(read_results(out))
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
    # the quote as a character reference: &#34; is how Jinja2 (markupsafe) writes &quot;
    assert any(f"{quote}&gt;&lt;img src=x onerror=alert(1)&gt;.jpg" in page for quote in ("&quot;", "&#34;"))
    # The astronaut reposts are one gallery, and no other gallery holds any of them.
    groups = page.split('<div class="group" ')[1:]
    holding = [g for g in groups if any(f"class=\"path\">{p}" in g for p in ASTRONAUT)]
    assert len(holding) == 1 and all(f"class=\"path\">{p}" in holding[0] for p in ASTRONAUT)
    assert "5 files" in holding[0]
    # Flagged faces: path, scores, reasons, the template drawn over them; the missing file has a placeholder.
    flagged = page.split('id="flagged"')[1].split('id="average"')[0]
    # one card per photo: flagged copies of one photo (a reuse group) share the card of the best-scoring one
    by_path = {r.path: r for r in report["results"]}
    photos = {by_path[p].cluster if by_path[p].cluster is not None else p for p in report["flagged"]}
    assert flagged.count('<div class="card">') == len(photos)
    assert flagged.count('class="overlay"') == len(photos) - 1
    assert "image not available" in flagged and "n/a" in flagged
    assert "gan_score" in flagged and "backbone_score" in flagged and "StyleGAN template positions" in flagged
    # Average face, heatmap with the template markers, counts and settings.
    assert 'alt="average of the flagged faces"' in page and 'alt="heatmap of eye positions"' in page
    assert page.split('id="heatmap"')[1].count('class="tpl"') >= 2
    assert "Files in the folder" in page and "Settings used" in page and "facecheck: test" in page
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
    assert builder.flagged == 220
    assert [r.gan_score for r in builder.flagged_cards.shown()] == [0.99, 0.99, 0.98, 0.98, 0.97]
    top3 = sorted(sizes.values(), reverse=True)[:3]
    assert sorted((g.size for g in builder._groups.values()), reverse=True) == top3
    assert all(len(g.members) == 2 for g in builder._groups.values())
    assert len(builder.error_list) == 4 and builder.errors == 9
    assert builder.hist.sum() == 400 and builder.on_template == 200
    assert builder.avg_count == builder.avg_tried == 0   # no folder: nothing to average
    page = builder.html({"mode": "default"}, {})
    assert "Showing the 5 photos with the highest gan_score among the 220 flagged files" in page
    assert "Showing 3 of 39 groups" in page
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


def _builder(**limits):
    from facecheck.geometry import EyeTemplate
    return ReportBuilder(None, EyeTemplate.load(), **limits)


def _cards(page: str, anchor: str) -> list[str]:
    section = page.split(f'id="{anchor}"')[1].split("<h2")[0]
    return section.split('<div class="card">')[1:]


def test_flagged_gallery_shows_one_card_per_reuse_group():
    """60 flagged files that are 6 faces copied 10 times: 6 cards, each the best-scoring copy, "+9 copies"."""
    rng = random.Random(1)
    rows = [Result(path=f"face{c}/copy{i}.jpg", cluster=c, cluster_size=10, verdict="gan",
                   gan_score=round(0.9 + rng.random() / 20, 4), width=100, height=100)
            for c in range(1, 7) for i in range(10)]
    rng.shuffle(rows)
    builder = _builder()
    for r in rows:
        builder.add(r)
    page = builder.html({}, {})
    cards = _cards(page, "flagged")
    assert len(cards) == 6 and all("+9 copies in this scan" in card for card in cards)
    best = {c: max((r for r in rows if r.cluster == c), key=lambda r: r.gan_score).path for c in range(1, 7)}
    assert sorted(re.search(r'class="path">([^<]+)<', card).group(1) for card in cards) == sorted(best.values())
    assert 'href="#group-' in cards[0] and 'id="group-' in page      # the card leads to its gallery
    assert "All 60 flagged files are shown, as 6 cards" in page


def test_card_galleries_stay_bounded_and_keep_the_best_photos():
    """Whatever the order and the limit, the cards are the best `limit` photos (a group counts as its
    best file), compared with a brute-force ranking, and memory holds `limit` entries."""
    rng = random.Random(2)
    rows = []
    for c in range(1, 301):                               # groups of 2-5 files, and singletons
        size = rng.randint(2, 5)
        rows += [Result(path=f"g{c}/{i}.jpg", cluster=c, cluster_size=size, verdict="gan",
                        gan_score=rng.random()) for i in range(size)]
    rows += [Result(path=f"single{i}.jpg", verdict="gan", gan_score=rng.random()) for i in range(300)]
    rng.shuffle(rows)
    builder = _builder(max_flagged=7)
    for r in rows:
        builder.add(r)
        assert len(builder.flagged_cards._heap) <= 7 and len(builder.flagged_cards._of_cluster) <= 7
    best: dict = {}
    for r in rows:
        key = r.cluster if r.cluster is not None else r.path
        if key not in best or r.gan_score > best[key].gan_score:
            best[key] = r
    expected = sorted(best.values(), key=lambda r: r.gan_score, reverse=True)[:7]
    assert [r.path for r in builder.flagged_cards.shown()] == [r.path for r in expected]
    assert f"Showing the 7 photos with the highest gan_score among the {len(rows):,} flagged files" in builder.html({}, {})


def test_unflagged_faces_on_the_template_get_a_review_section():
    """Rows whose reasons carry the on-template caveat (verdict real) are shown to look at, bounded,
    closest to the threshold first, with the caveat explained once rather than on every card."""
    from facecheck.verdict import Decision, on_template_caveat
    thresholds = {"strict": 0.95, "default": 0.9, "sensitive": 0.6}
    rows = []
    for i in range(40):
        score = round(0.3 + i / 100, 2)
        caveat = on_template_caveat(Decision("real", score, 0.9, "default"), {"template_z2": 2.0}, thresholds)
        rows.append(Result(path=f"aligned{i}.jpg", verdict="real", gan_score=score, width=100, height=100,
                           eyes=[[37.5, 47.8], [62.5, 47.8]], reasons=[f"not flagged: gan_score {score:.3f}", caveat]))
    rows += [Result(path=f"natural{i}.jpg", verdict="real", gan_score=0.01, reasons=["eyes 20% away"]) for i in range(30)]
    random.Random(3).shuffle(rows)
    builder = _builder(max_review=4)
    for r in rows:
        builder.add(r)
    assert builder.to_review == 40 and len(builder.review_cards._heap) == 4
    page = builder.html({"mode": "default"}, {})
    cards = _cards(page, "review")
    assert [re.search(r'class="path">([^<]+)<', c).group(1) for c in cards] == [f"aligned{i}.jpg" for i in (39, 38, 37, 36)]
    assert all("<li>sensitive mode would flag it</li>" in c for c in cards)
    assert "FFHQ way" not in "".join(cards)                       # the section explains it once
    assert "natural" not in page.split('id="review"')[1].split("<h2")[0]
    assert 'href="#review"' in page and "Showing the 4 photos" in page
    assert "Not flagged, but eyes where StyleGAN puts them" in page   # and the counts say how many
    # no such rows, no section
    builder = _builder()
    builder.add(Result(path="x.jpg", verdict="real", reasons=["eyes 20% away"]))
    assert 'id="review"' not in builder.html({}, {})


def test_settings_are_readable_and_the_operating_point_is_said_once(report):
    """No blank cells, thresholds to 3 decimals, 'the only group' (not 'All 1 groups'), and the mode's
    promise in the header and the settings, never repeated on the cards."""
    from facecheck.geometry import EyeTemplate
    settings = {"device": "auto", "workers": None, "index": None, "mode": "default", "batch_size": 32,
                "thresholds (gan_score)": {"strict": 0.9581234567891234, "default": 0.9170000000000001,
                                           "sensitive": 0.6012345678901234}}
    builder = ReportBuilder(None, EyeTemplate.load())
    for i in range(2):
        builder.add(Result(path=f"g{i}.jpg", cluster=1, cluster_size=2, verdict="gan", gan_score=0.95,
                           reasons=["GAN face: gan_score 0.950 >= 0.917 (default mode)"]))
    page = builder.html(settings, {})
    table = page.split('id="settings"')[1]
    assert "<td></td>" not in table and "not set" in table
    assert "0.958" in table and "0.9581" not in page and "0.917000" not in page
    assert page.count("flags &lt;= 0.1% of real natural photos") == 2          # header and settings
    assert "gan_score &ge; 0.917" in page.split("<h2")[0]
    assert "All 1 groups" not in page and "The only group is shown." in page
    # a real scan's reasons do not carry the operating point either
    flagged = report["html"].split('id="flagged"')[1].split('id="average"')[0]
    assert "of real natural photos" not in flagged


SCRIPT_NAME = "<script>alert(1)</script>.jpg"
ONLOAD_NAME = '"onload=alert(2) x=".jpg'
CSP = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"


def test_hostile_text_is_escaped_everywhere_the_page_shows_it():
    """File names, reasons, matches, errors, settings and summary keys reach the page only as text:
    no script element, no event-handler attribute, and the Content-Security-Policy stays."""
    hostile = [SCRIPT_NAME, ONLOAD_NAME]
    builder = _builder()
    for i, name in enumerate(hostile):
        common = dict(width=100, height=100, eyes=[[37.5, 47.8], [62.5, 47.8]], reasons=[name],
                      seen_before=True, seen_in=[f"old:{name}"],
                      known_matches=[{"list": name, "label": name, "hash": "0" * 64, "kind": "pdq", "distance": 3}])
        builder.add(Result(path=f"dir{name}/{name}", verdict="gan", gan_score=0.99, cluster=i + 1, cluster_size=2,
                           **common))
        builder.add(Result(path=name, verdict="gan", gan_score=0.98, cluster=i + 1, cluster_size=2, **common))
        builder.add(Result(path=f"broken{name}", verdict="error", error=f"cannot decode {name}"))
    page = builder.html({"mode": "default", ONLOAD_NAME: SCRIPT_NAME, "index": [ONLOAD_NAME]},
                        {SCRIPT_NAME: ONLOAD_NAME})
    assert "<script" not in page.lower() and "</script" not in page.lower()
    assert page.count(CSP) == 1 and page.index(CSP) < page.index("<body>")
    tags = re.findall(r"<([A-Za-z][A-Za-z0-9]*)\b([^>]*)>", page)
    assert {t.lower() for t, _ in tags} <= {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3",
                                           "p", "br", "code", "b", "nav", "a", "table", "tr", "th", "td", "div",
                                           "span", "ul", "li", "img", "svg", "circle", "line", "rect"}
    assert not any(re.search(r"\son\w+\s*=", attrs, flags=re.I) for _, attrs in tags)   # no event handlers
    script_text = "&lt;script&gt;alert(1)&lt;/script&gt;.jpg"
    for anchor in ("flagged", "groups", "seen", "known", "errors", "settings"):
        section = page.split(f'id="{anchor}"')[1].split("<h2")[0]
        assert script_text in section, anchor
        assert "onload=alert(2) x=" in section and '"onload' not in section, anchor


def test_the_template_marks_nothing_safe():
    """Escaping is the template engine's, by default: no value is let through unescaped."""
    from facecheck.report import render
    package = Path(render.__file__).parent
    for path in [*package.glob("*.py"), *(package / "templates").iterdir()]:
        text = path.read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", "") and "Markup(" not in text, path.name
    assert render.environment().autoescape is True


def test_counts_read_as_words_and_the_report_time_is_not_a_false_zero():
    """Timings from pipeline.summary.ScanSummary get readable labels and durations, not their field names; the
    report's own time is 0 in the summary it is given (it is measured after the page is written), so
    the page says so instead of "0.000"; a time it is given is shown."""
    builder = _builder()
    builder.add(Result(path="a.jpg", verdict="real"))
    summary = {"files": 1, "scanned": 1, "seconds": 12.5, "analysis_seconds": 11.25, "grouping_seconds": 1.2,
               "report_seconds": 0.0, "index_seconds": 0.5}
    counts = builder.html({}, summary).split('id="counts"')[1].split("<h2")[0]
    assert "_seconds" not in counts and "0.000" not in counts
    assert "<th>Scan time (until this report was begun)</th><td>12.5 s</td>" in counts
    assert "<th>of which reading and analysing the files</th><td>11.2 s</td>" in counts
    assert "<th>Time: index</th><td>0.5 s</td>" in counts
    assert "not counted above: it was being written when these times were taken" in counts
    counts = builder.html({}, dict(summary, report_seconds=2.25)).split('id="counts"')[1].split("<h2")[0]
    assert "<th>Writing this report</th><td>2.2 s</td>" in counts


def test_a_scan_report_labels_its_timings(report):
    counts = report["html"].split('id="counts"')[1].split("<h2")[0]
    assert "_seconds" not in counts and "Scan time (until this report was begun)" in counts
    assert "of which grouping reused photos" in counts and "Writing this report" in counts


def test_hash_list_matches_show_thumbnails(tmp_path):
    """The section of files matching an imported hash list shows each file's picture beside its matches
    (a placeholder saying why where the file cannot be read)."""
    from facecheck.geometry import EyeTemplate
    shutil.copyfile(SAMPLES / "account_a.png", tmp_path / "listed.png")
    match = {"list": "shared.csv", "label": "network-3", "hash": "0" * 64, "kind": "pdq", "distance": 12}
    builder = ReportBuilder(tmp_path, EyeTemplate.load())
    builder.add(Result(path="listed.png", verdict="real", width=300, height=300, known_matches=[match]))
    builder.add(Result(path="gone.png", verdict="real", known_matches=[match]))
    section = builder.html({}, {}).split('id="known"')[1].split("<h2")[0]
    rows = section.split("<tr>")[2:]
    assert len(rows) == 2 and "<th>picture</th>" in section
    assert re.search(r'<img src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', rows[0]) and "listed.png" in rows[0]
    assert "image not available" in rows[1] and "gone.png" in rows[1]
    assert all("shared.csv: network-3, pdq, 12 bits" in row for row in rows)
