"""`preflight report`: the check as one self-contained HTML page, with the sampled frames
(faces boxed), each sound's waveform with speech marked, and its loudness over time."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from preflight._cli.main import main
from preflight._render.html import audio_timeline
from tests.conftest import BAD, SAMPLE, run_cli

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its Chromium profiles) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_report")

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
#: Console messages (script errors, blocked loads) go to stderr, where the test reads them.
LOGGING = ("--enable-logging=stderr", "--v=0")


class Page(HTMLParser):
    """The page's elements, each with the file section (``details`` id) it lies in."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], str | None]] = []
        self.section: str | None = None
        self.titles: dict[str, str] = {}
        self._in_path = False
        self.headings: list[tuple[str, str]] = []
        self.paragraphs_seen: list[tuple[str, str]] = []
        self.feed(text)

    @property
    def paragraphs(self) -> list[str]:
        return [data for _, data in self.paragraphs_seen]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "details":
            self.section = values.get("id")
        self._in_path = tag == "span" and values.get("class") == "path"
        self.elements.append((tag, values, self.section))

    def handle_data(self, data: str) -> None:
        if self.elements and self.elements[-1][0] in ("h2", "p"):
            tag = self.elements[-1][0]
            (self.headings if tag == "h2" else self.paragraphs_seen).append((tag, data))
        if self._in_path and self.section is not None:
            self.titles[data] = self.section
            self._in_path = False

    def within(self, path: str | Path, tag: str, css: str | None = None) -> list[dict[str, str]]:
        section = self.titles[str(path)]
        return [a for t, a, s in self.elements if s == section and t == tag and css in (None, a.get("class"))]


def report(*args: str) -> tuple[int, str]:
    """Run `preflight report`: its exit status and what it said on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["report", *args])
    return status, err.getvalue()


def checked(*args: str) -> dict[str, Any]:
    status, out = run_cli("check", *args, "--format", "json", "--no-cache")
    assert status in (0, 1)
    document: dict[str, Any] = json.loads(out)
    return document


def test_a_job_report_is_one_self_contained_page_with_what_check_found(tmp_path: Path) -> None:
    video, voice, face = SAMPLE / "talking_head.mp4", SAMPLE / "voice.wav", SAMPLE / "face.jpg"
    job = ("--video", str(video), "--audio", str(voice), "--ref", str(face))
    expected = checked(*job)
    page_path = tmp_path / "job.html"

    status, said = report(*job, "-o", str(page_path))

    text = page_path.read_text(encoding="utf-8")
    page = Page(text)
    assert status == (0 if expected["summary"]["errors"] == 0 else 1)
    assert f"report written to {page_path}" in said
    # Every finding of the check is on the page, with its message.
    for file in expected["files"]:
        for finding in file["findings"]:
            assert finding["code"] in text and page.unescape(finding["message"]) in page.unescape(text)
    for finding in expected["job"]["findings"]:
        assert finding["code"] in text
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "url(" not in text
    images = [a for t, a, _ in page.elements if t == "img"]
    assert images and all(a["src"].startswith("data:image/jpeg;base64,") for a in images)
    # The video's sampled frames, faces boxed; the portrait with its face.
    (sheet,) = page.within(video, "img", "sheet")
    frames = len(expected["files"][0]["faces"]["samples"])
    with Image.open(io.BytesIO(base64.b64decode(sheet["src"].split(",", 1)[1]))) as picture:
        assert picture.width == int(sheet["width"]) and picture.height > 58 + 240 * (frames // 6)
    assert page.within(face, "img", "portrait")
    # The voice: one shaded band per speech stretch the check heard, a waveform, and the
    # loudness lines, with the whole file's integrated loudness where the check measured it.
    speech = expected["files"][1]["speech"]
    assert len(page.within(voice, "rect", "speech")) == 2 * len(speech["speech_ranges"])  # both plots
    assert len(page.within(voice, "polygon", "wave")) == 1
    assert len(page.within(voice, "polyline", "short-term")) == 1
    integrated = re.findall(r"integrated (-?[\d.]+) LUFS", text)
    assert any(abs(float(v) - speech["loudness_lufs"]) <= 0.5 for v in integrated)


def test_the_waveform_and_loudness_follow_the_sound(media: Any, tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(2 * rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 997 * t)  # -6 dBFS peak: -9.0 LUFS on one channel
    signal = np.concatenate([np.zeros(rate), tone, np.zeros(rate)])
    path = media.write_audio(tmp_path / "tone.wav", duration=4.0, sample_rate=rate, signal=signal)

    timeline = audio_timeline(path, columns=400)

    assert timeline is not None and timeline.error is None and not timeline.cut_short
    assert timeline.duration == pytest.approx(4.0, abs=0.01)
    highs, lows = np.array(timeline.highs), np.array(timeline.lows)
    assert len(highs) == 400
    quiet = np.r_[highs[:95], highs[305:]]
    assert np.all(np.abs(quiet) < 0.01) and np.all(np.abs(np.r_[lows[:95], lows[305:]]) < 0.01)
    assert np.all(np.abs(highs[105:295] - 0.5) < 0.01) and np.all(np.abs(lows[105:295] + 0.5) < 0.01)
    # Momentary loudness: 400 ms windows every 100 ms, -9 LUFS inside the tone.
    inside = [m for time, m, _ in timeline.loudness if 1.5 <= time <= 3.0]
    assert len(inside) >= 14 and all(abs(m + 9.0) < 0.3 for m in inside)
    assert max(s for _, _, s in timeline.loudness if np.isfinite(s)) < -9.0 + 0.3
    assert timeline.speech  # the detector hears the tone as "speech": above the floor


def test_a_long_sound_is_drawn_up_to_the_bound(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "voice.wav", duration=3.0)

    timeline = audio_timeline(path, max_seconds=1.0)

    assert timeline is not None and timeline.cut_short
    assert timeline.duration == pytest.approx(1.0, abs=0.1)


def test_a_folder_report_shows_broken_files_with_their_code(tmp_path: Path) -> None:
    expected = checked(str(BAD), "--fast")
    page_path = tmp_path / "bad media.html"

    status, said = report(str(BAD), "--fast", "-o", str(page_path))

    text = page_path.read_text(encoding="utf-8")
    page = Page(text)
    assert status == 1 and "Traceback" not in said
    assert set(page.titles) == {f["path"] for f in expected["files"]}
    for file in expected["files"]:
        for finding in file["findings"]:
            assert finding["code"] in text
    assert "InvalidFile.Openerror" in text  # notes.mp4 is text, not a video


def test_a_job_whose_video_would_be_refused_is_titled_rejected(tmp_path: Path) -> None:
    # The pairing itself is fine (no job-level finding) but the 10 fps video is an error:
    # the service refuses the job as a whole, and the page must say so.
    video, voice = BAD / "low fps 480p.avi", SAMPLE / "voice.wav"
    expected = checked("--video", str(video), "--audio", str(voice), "--fast")
    assert not any(f["severity"] == "error" for f in expected["job"]["findings"])
    page_path = tmp_path / "job.html"

    status, _ = report("--video", str(video), "--audio", str(voice), "--fast", "-o", str(page_path))

    text = Page(page_path.read_text(encoding="utf-8"))
    headings = [data for tag, data in text.headings if tag == "h2"]
    assert status == 1
    assert "The job as a whole: rejected" in headings
    assert f"because of {video} (video)" in text.paragraphs


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("report.mp4", "give a name ending in .html"),
        ("missing/report.html", "no folder missing"),
        (".", "is a folder"),
    ],
)
def test_a_page_that_could_not_be_written_is_refused_before_any_work(
    output: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    status, said = report(str(SAMPLE / "voice.wav"), "-o", output)

    assert status == 2 and expected in said
    assert list(tmp_path.iterdir()) == []


def test_the_page_never_replaces_a_file_it_checks(tmp_path: Path) -> None:
    disguised = tmp_path / "voice.html"
    shutil.copy(SAMPLE / "voice.wav", disguised)
    before = disguised.read_bytes()

    status, said = report("--audio", str(disguised), "-o", str(disguised))

    assert status == 2 and "is one of the files to check" in said
    assert disguised.read_bytes() == before


def test_nothing_to_report_on_is_a_usage_error(tmp_path: Path) -> None:
    status, said = report("-o", str(tmp_path / "r.html"))
    assert status == 2 and "nothing to report on" in said


# --- in a browser ---------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium to render the page (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def browse(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    binary = _chromium()
    profiles = tmp_path_factory.mktemp("chromium")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        profile = profiles / str(len(list(profiles.iterdir())))
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, *LOGGING, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return run


def test_the_page_renders_in_headless_chromium_without_errors(
    tmp_path: Path, browse: Callable[..., subprocess.CompletedProcess[str]], request: pytest.FixtureRequest
) -> None:
    from tests.conftest import SHARED_MEDIA

    real = SHARED_MEDIA / "SadTalker__ref_video__WDA_KatieHill_000.mp4"
    video = real if real.exists() else SAMPLE / "talking_head.mp4"
    page_path = tmp_path / "job page.html"
    status, _ = report("--video", str(video), "--audio", str(SAMPLE / "voice.wav"), "-o", str(page_path))
    assert status in (0, 1)
    url = page_path.as_uri()

    dom = browse("--dump-dom", url)
    shot = browse("--window-size=1280,2000", f"--screenshot={tmp_path / 'shot.png'}", url)

    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    # The page's script ran to its end, and every picture decoded.
    assert attributes.get("data-ready") == "1"
    images, broken = map(int, attributes["data-images"].split())
    assert images >= 1 and broken == 0
    assert re.search(r'<p id="script-error"[^>]*hidden', dom.stdout)
    # No script error, and nothing blocked by the page's own policy (it loads nothing).
    for output in (dom.stderr, shot.stderr):
        console = [line for line in output.splitlines() if "CONSOLE" in line or "Content Security" in line]
        assert not console, console
    with Image.open(tmp_path / "shot.png") as picture:
        pixels = np.asarray(picture.convert("L"))
    assert picture.size == (1280, 2000)
    # Rendered, not blank: the header, the frames and the plots make many shades.
    assert len(np.unique(pixels)) > 100 and pixels.std() > 20
