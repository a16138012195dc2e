"""The pre-commit hooks (.pre-commit-hooks.yaml), run by the real `pre-commit` in a
scratch git repository, as a team would use them: the documented snippet (docs/ci.md)
installs the hook, a commit of good media goes through, a commit that adds a 1 s clip is
refused with the service's error code, nothing is rewritten, and files that are not media
never reach preflight.

pre-commit installs hooks from a git repository at a revision. So that the hooks tested are
the ones in this working tree (uncommitted changes included, as `pre-commit try-repo`
would do, but try-repo neither sees new files nor keeps its environment), the tree is
committed whole to a scratch repository once per session, and every config here points at
that one. pre-commit then builds the hook's virtualenv from it with pip once per session
(PyAV, mediapipe... from PyPI or pip's cache): that is the slow setup step here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tests.commands import ok, run_command
from tests.conftest import ROOT, doc_snippet

yaml: Any = pytest.importorskip("yaml", reason="PyYAML comes with pre-commit: pip install -e '.[dev]'")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (the hooks' virtualenv, with mediapipe) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_pre_commit_hook")

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
HOOK_IDS = ["preflight-check", "preflight-check-fast"]
#: Old enough for preflight's cache, which never keeps a file modified in the last 2 s.
LONG_AGO = time.time() - 3600
#: Building the hook's environment downloads mediapipe and its friends on a cold pip cache.
INSTALL_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 300
#: The pre-commit of this Python (the dev extra's).
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]
#: git and pre-commit here, given RUN_TIMEOUT_S unless a call says otherwise.
_run = partial(run_command, timeout=RUN_TIMEOUT_S)


@dataclass(frozen=True)
class HookSource:
    """This working tree as a repository pre-commit can install hooks from."""

    repo: Path
    rev: str


def _environment() -> dict[str, str]:
    """The environment for git and pre-commit: none of the caller's git state (a test run
    from inside a git hook would inherit GIT_INDEX_FILE...), none of pre-commit's (SKIP
    would skip our hook), and preflight's cache in its default place, not the test run's."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GIT_", "PRE_COMMIT")) and name not in ("SKIP", "PREFLIGHT_CACHE_DIR")
    }


def _scratch_environment(pre_commit_home: Path | None = None) -> dict[str, str]:
    """The same for the scratch repositories, without the user's or the system's git
    settings (HOME stays: pip's own settings and cache live there), and with pre-commit's
    store in ``pre_commit_home``."""
    env = _environment() | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if pre_commit_home is not None:
        # virtualenv's seed wheels there too, rather than in the user's ~/.cache.
        env["PRE_COMMIT_HOME"] = str(pre_commit_home)
        env["VIRTUALENV_OVERRIDE_APP_DATA"] = str(pre_commit_home / "virtualenv")
    return env


def _hook_result(output: str, name: str) -> str:
    """Passed, Failed or Skipped, from pre-commit's line for the hook named ``name``."""
    found = re.findall(rf"^{re.escape(name)}\.+(?:\([^)]*\))?(Passed|Failed|Skipped)$", output, re.MULTILINE)
    assert len(found) == 1, f"no single result line for {name!r} in:\n{output}"
    return str(found[0])


def _manifest() -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return hooks


# --------------------------------------------------------------------------- the manifest
def test_the_hooks_look_at_exactly_the_files_a_folder_check_looks_at() -> None:
    # pre-commit tags no video types, so the hooks name extensions: the very ones with
    # which a folder check recognises media, in any case, and nothing else.
    # Less .ts and .mts, TypeScript's too: a folder check looks inside those, a hook cannot.
    from preflight._probe.sniff import AMBIGUOUS_EXTS, AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS

    media = (VIDEO_EXTS | AUDIO_EXTS | IMAGE_EXTS) - AMBIGUOUS_EXTS
    hooks = _manifest()
    assert [hook["id"] for hook in hooks] == HOOK_IDS
    for hook in hooks:
        pattern = re.compile(hook["files"])
        listed = re.fullmatch(r"\(\?i\)\\\.\(([a-z0-9|]+)\)\$", hook["files"])
        assert listed is not None, f"{hook['id']}: files is not (?i)\\.(ext|...)$: {hook['files']}"
        assert {f".{ext}" for ext in listed.group(1).split("|")} == media
        for ext in sorted(media):
            for name in (f"media/clip{ext}", f"CLIP{ext.upper()}", f"a b/Clip{ext.capitalize()}"):
                assert pattern.search(name), f"{hook['id']} would not check {name}"
        others = ("README.txt", "clip.mp4.txt", "clip.mp4.bak", "mp4", "preflight.toml")
        for name in (*others, "src/app.tsx", "src/app.ts", "lib/x.mts"):
            assert not pattern.search(name), f"{hook['id']} would pass {name} to preflight"
        # Only files (pre-commit never passes a symlink to a `file` hook), with Python.
        assert hook["types"] == ["file"] and hook["language"] == "python"


def test_the_hooks_only_check_with_the_installed_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "preflight" in scripts
    entries = {hook["id"]: hook["entry"].split() for hook in _manifest()}
    # `check` never writes a file (a hook that does is failed by pre-commit); --fast is in
    # the entry, not in args, so that a project's own `args:` cannot drop it; and the
    # settings' exclude globs apply to the files pre-commit names (--force-exclude).
    assert entries == {
        "preflight-check": ["preflight", "check", "--quiet", "--force-exclude"],
        "preflight-check-fast": ["preflight", "check", "--quiet", "--force-exclude", "--fast"],
    }


def test_pre_commit_accepts_the_manifest(tmp_path: Path) -> None:
    if find_spec("pre_commit") is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[dev]')")
    env = _scratch_environment(tmp_path / "pre-commit-home")
    ok(_run([*PRE_COMMIT, "validate-manifest", str(MANIFEST)], ROOT, env))


# --------------------------------------------------------------------------- the real thing
@pytest.fixture(scope="session")
def hook_source(tmp_path_factory: pytest.TempPathFactory) -> HookSource:
    """This working tree committed whole (tracked and untracked files, not ignored ones) to
    a scratch repository, once per session; CI's clean checkout gives the same tree."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if find_spec("pre_commit") is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[dev]')")
    env = _environment()
    top = _run(["git", "rev-parse", "--show-toplevel"], ROOT, env)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT.resolve():
        pytest.skip(f"{ROOT} is not a git checkout; pre-commit installs hooks from a git repository")
    listing = ok(_run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT, env))
    repo = tmp_path_factory.mktemp("hook-source") / "videoretalk-preflight"
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if not os.path.lexists(source):
            continue  # deleted in the working tree
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, repo / name, follow_symlinks=False)
    scratch = _scratch_environment()
    identity = [
        "-c",
        "user.name=preflight tests",
        "-c",
        "user.email=tests@localhost",
        "-c",
        "commit.gpgsign=false",
    ]
    ok(_run(["git", "init", "--quiet", str(repo)], repo.parent, scratch))
    ok(_run(["git", "add", "--all"], repo, scratch))
    ok(_run(["git", *identity, "commit", "--quiet", "--no-verify", "-m", "working tree"], repo, scratch))
    rev = ok(_run(["git", "rev-parse", "HEAD"], repo, scratch)).strip()
    return HookSource(repo, rev)


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory, hook_source: HookSource) -> Iterator[Path]:
    """pre-commit's store for this session, with the hooks' environment built in it once
    (both hooks share it). Removed afterwards: it holds a whole virtualenv with mediapipe."""
    home = tmp_path_factory.mktemp("pre-commit-home")
    repo = _new_repo(tmp_path_factory.mktemp("install"), home)
    _write_config(repo, hook_source, [{"id": hook_id} for hook_id in HOOK_IDS])
    started = time.monotonic()
    result = _run([*PRE_COMMIT, "install-hooks"], repo, _scratch_environment(home), timeout=INSTALL_TIMEOUT_S)
    took = time.monotonic() - started
    if result.returncode != 0:
        log = home / "pre-commit.log"
        details = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        pytest.fail(f"pre-commit could not build the hook's environment:\n{result.stdout}\n{details}")
    print(f"\npre-commit built the hooks' environment in {took:.1f} s")
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _new_repo(folder: Path, pre_commit_home: Path) -> Path:
    """An empty git repository with its own identity, never signing."""
    env = _scratch_environment(pre_commit_home)
    ok(_run(["git", "init", "--quiet", str(folder)], folder, env))
    for key, value in (
        ("user.name", "Media Team"),
        ("user.email", "media@localhost"),
        ("commit.gpgsign", "false"),
    ):
        ok(_run(["git", "config", key, value], folder, env))
    return folder


def _write_config(repo: Path, source: HookSource, hooks: list[dict[str, Any]]) -> None:
    config = {"repos": [{"repo": str(source.repo), "rev": source.rev, "hooks": hooks}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _documented_config() -> dict[str, Any]:
    """The documented `.pre-commit-config.yaml` (docs/ci.md), as users copy it."""
    config: dict[str, Any] = yaml.safe_load(doc_snippet("pre-commit"))
    return config


def _place(source: Path, target: Path) -> Path:
    """A copy of a made media file in the repository, last modified an hour ago."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    os.utime(target, (LONG_AGO, LONG_AGO))
    return target


@pytest.fixture
def git(tmp_path: Path, pre_commit_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`git ...` (or `pre-commit ...` as git("pre-commit", ...)) in a fresh repository at tmp_path."""
    repo = _new_repo(tmp_path, pre_commit_home)
    env = _scratch_environment(pre_commit_home)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*PRE_COMMIT, *args[1:]] if args[0] == "pre-commit" else ["git", *args]
        return _run(command, repo, env)

    return run


def test_the_documented_config_lets_good_media_in_and_stops_a_clip_the_service_would_reject(
    tmp_path: Path, git: Callable[..., subprocess.CompletedProcess[str]], hook_source: HookSource, made: Any
) -> None:
    from preflight import __version__

    # The team copies the documented config; here it points at this working tree instead.
    config = _documented_config()
    (entry,) = config["repos"]
    assert entry["repo"].endswith("/videoretalk-preflight"), entry["repo"]
    assert entry["rev"] == f"v{__version__}", "the documented rev should name this version's tag"
    (hook,) = entry["hooks"]
    hook_name = {known["id"]: known["name"] for known in _manifest()}[hook["id"]]
    entry.update(repo=str(hook_source.repo), rev=hook_source.rev)
    (tmp_path / ".pre-commit-config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
    )
    # Settings of its own, so preflight keeps its cache beside them, inside the repository;
    # drafts are nobody's business until they leave the drafts folder.
    (tmp_path / "preflight.toml").write_text(
        'ignore = ["Audio.Music"]\nexclude = ["drafts/**"]\n', encoding="utf-8"
    )
    (tmp_path / "README.txt").write_text("Media for the spring campaign.\n", encoding="utf-8")
    ok(git("pre-commit", "install"))

    # Nothing that is media: the hook has no file to look at (README.txt never reaches it).
    ok(git("add", "--all"))
    first = ok(git("commit", "-m", "settings"))
    assert _hook_result(first, hook_name) == "Skipped" and "(no files to check)" in first

    # A talking-head clip, its new voice and a reference photo: accepted.
    good = {
        "media/talk.mp4": made("video", "pre-commit talk.mp4", source="face", duration=3.0),
        "media/voice.wav": made("audio", "pre-commit voice.wav", duration=3.0),
        "media/face.jpg": made("image", "pre-commit face.jpg", source="face"),
    }
    for name, source in good.items():
        _place(source, tmp_path / name)
    draft = "drafts/rough cut.mp4"  # 1 s: the service would refuse it, but it is excluded
    _place(made("video", "pre-commit short.mp4", source="face", duration=1.0), tmp_path / draft)
    ok(git("add", "--all"))
    second = ok(git("commit", "-m", "campaign media"))
    assert _hook_result(second, hook_name) == "Passed"
    head = ok(git("rev-parse", "HEAD"))

    # A 1 s clip (the service wants 2-120 s): the commit is refused, naming the file and
    # the service's code, and only that file.
    _place(
        made("video", "pre-commit short.mp4", source="face", duration=1.0), tmp_path / "media/too short.mp4"
    )
    ok(git("add", "media/too short.mp4"))
    refused = git("commit", "-m", "teaser")
    assert refused.returncode == 1, refused.stdout
    assert _hook_result(refused.stdout, hook_name) == "Failed"
    assert "media/too short.mp4" in refused.stdout and "InvalidFile.Duration" in refused.stdout
    assert not any(name in refused.stdout for name in good), refused.stdout
    assert ok(git("rev-parse", "HEAD")) == head

    # The whole repository, as CI runs it: the four media files and nothing else are
    # checked, the short clip alone reported.
    everything = git("pre-commit", "run", "--all-files", "--color=never")
    assert everything.returncode == 1, everything.stdout
    assert "Checked 4 files: 1 error" in everything.stdout
    assert "media/too short.mp4" in everything.stdout
    for name in (*good, draft, "README.txt", "preflight.toml", ".pre-commit-config.yaml"):
        assert name not in everything.stdout, everything.stdout

    # Nothing was rewritten and nothing left lying around: the clip is still staged as it
    # was, and the cache preflight kept beside its settings is ignored by git on its own.
    for output in (first, second, refused.stdout, everything.stdout):
        assert "files were modified by this hook" not in output
    assert (tmp_path / ".preflight_cache").is_dir()
    assert ok(git("status", "--porcelain", "--untracked-files=all")) == 'A  "media/too short.mp4"\n'


def test_the_fast_hook_reads_container_facts_only(
    tmp_path: Path, git: Callable[..., subprocess.CompletedProcess[str]], hook_source: HookSource, made: Any
) -> None:
    # A team that treats "no face" as an error: a clip of a test pattern fails the full
    # hook, while the fast one, which never looks at the pixels, lets it through; both
    # stop a clip that is too short.
    _write_config(tmp_path, hook_source, [{"id": hook_id} for hook_id in HOOK_IDS])
    (tmp_path / "preflight.toml").write_text('[severity]\n"Face.NotFound" = "error"\n', encoding="utf-8")
    _place(made("video", "pre-commit pattern.mp4", source="pattern", duration=3.0), tmp_path / "pattern.mp4")
    ok(git("add", "--all"))

    run = git("pre-commit", "run", "--all-files", "--color=never")
    assert run.returncode == 1, run.stdout
    assert _hook_result(run.stdout, "preflight check") == "Failed"
    assert _hook_result(run.stdout, "preflight check --fast") == "Passed"
    assert "pattern.mp4" in run.stdout and "Face.NotFound" in run.stdout

    _place(made("video", "pre-commit short.mp4", source="face", duration=1.0), tmp_path / "short.mp4")
    ok(git("add", "short.mp4"))
    fast = git("pre-commit", "run", "preflight-check-fast", "--all-files", "--color=never")
    assert fast.returncode == 1, fast.stdout
    assert "short.mp4" in fast.stdout and "InvalidFile.Duration" in fast.stdout
    assert "pattern.mp4" not in fast.stdout and "Face." not in fast.stdout
