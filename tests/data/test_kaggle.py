"""Kaggle downloads: credentials, a fake ``kaggle`` package (never the network), clear failures."""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

import pytest

from trainlab.cli import main
from trainlab.data import kaggle as kg
from trainlab.errors import TrainlabError

SECRET = "s3cr3t-key-0123456789"


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no Kaggle credentials anywhere; returns the fake home."""
    home = tmp_path / "home"
    home.mkdir()
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setattr(kg.Path, "home", classmethod(lambda cls: home))
    return home


def _fake_kaggle(monkeypatch: pytest.MonkeyPatch, download) -> list[str]:  # type: ignore[no-untyped-def]
    """Install a fake ``kaggle.api.kaggle_api_extended.KaggleApi``; returns the call log."""
    calls: list[str] = []

    class KaggleApi:
        def authenticate(self) -> None:
            calls.append("authenticate")
            print("noise the user should not see")

        def competition_download_files(
            self, competition: str, path: str, force: bool, quiet: bool
        ) -> None:
            calls.append(competition)
            download(competition, Path(path))

    pkg = types.ModuleType("kaggle")
    api = types.ModuleType("kaggle.api")
    ext = types.ModuleType("kaggle.api.kaggle_api_extended")
    ext.KaggleApi = KaggleApi  # type: ignore[attr-defined]
    pkg.api = api  # type: ignore[attr-defined]
    api.kaggle_api_extended = ext  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kaggle", pkg)
    monkeypatch.setitem(sys.modules, "kaggle.api", api)
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", ext)
    return calls


def _zip_covid(competition: str, dest: Path) -> None:
    with zipfile.ZipFile(dest / f"{competition}.zip", "w") as zf:
        zf.writestr("covid.train.csv", "id,AL\n0,1\n")
        zf.writestr("covid.test.csv", "id,AL\n0,1\n")
        zf.writestr("sampleSubmission.csv", "id,tested_positive\n0,0\n")


def test_no_credentials_says_what_to_do(no_credentials: Path) -> None:
    with pytest.raises(TrainlabError, match="no Kaggle credentials found") as info:
        kg.find_credentials()
    msg = str(info.value)
    assert "kaggle.json" in msg and "KAGGLE_USERNAME" in msg and "KAGGLE_API_TOKEN" in msg


def test_half_credentials_and_bad_json(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    with pytest.raises(TrainlabError, match="KAGGLE_KEY is not"):
        kg.find_credentials()
    monkeypatch.delenv("KAGGLE_USERNAME")
    cfg = no_credentials / ".kaggle"
    cfg.mkdir()
    (cfg / "kaggle.json").write_text("{not json")
    with pytest.raises(TrainlabError, match="not a valid kaggle.json"):
        kg.find_credentials()
    (cfg / "kaggle.json").write_text(json.dumps({"username": "me"}))
    with pytest.raises(TrainlabError, match="lacks 'username' or 'key'"):
        kg.find_credentials()
    (cfg / "kaggle.json").write_text(json.dumps({"username": "me", "key": SECRET}))
    found = kg.find_credentials()
    assert found.endswith("kaggle.json") and SECRET not in found


def test_environment_credentials_are_found(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    assert kg.find_credentials() == "KAGGLE_USERNAME/KAGGLE_KEY"
    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    assert kg.find_credentials() == "KAGGLE_API_TOKEN"


def test_download_unzips_with_a_fake_package(
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    calls = _fake_kaggle(monkeypatch, _zip_covid)
    dest = tmp_path / "covid"
    files = kg.download("covid", dest, quiet=True)
    assert calls == ["authenticate", "ml2021spring-hw1"]
    assert {f.name for f in files} == {"covid.train.csv", "covid.test.csv", "sampleSubmission.csv"}
    assert not list(dest.glob("*.zip"))
    assert "noise" not in capsys.readouterr().out
    # complete already: no second download
    kg.download("covid", dest, quiet=True)
    assert calls == ["authenticate", "ml2021spring-hw1"]


@pytest.mark.parametrize(
    "error, expected",
    [
        (RuntimeError("403 Client Error: Forbidden for url"), "accept its rules"),
        (RuntimeError("401 Client Error: Unauthorized"), "rejected the credentials"),
        (ConnectionError("Failed to resolve 'www.kaggle.com'"), "cannot reach kaggle.com"),
        (
            RuntimeError(f"boom with {SECRET} inside"),
            "downloading ml2021spring-hw2 from Kaggle failed",
        ),
    ],
)
def test_download_failures_are_one_clear_line_without_secrets(
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    error: Exception,
    expected: str,
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)

    def fail(competition: str, dest: Path) -> None:
        raise error

    _fake_kaggle(monkeypatch, fail)
    with pytest.raises(TrainlabError, match=expected) as info:
        kg.download("phoneme", tmp_path / "ph", quiet=True)
    assert SECRET not in str(info.value) and "\n" not in str(info.value)


def test_unimportable_package_is_explained(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    monkeypatch.setitem(sys.modules, "kaggle", None)  # makes "import kaggle..." raise ImportError
    with pytest.raises(TrainlabError, match=r"'kaggle' package cannot be imported.*pip install"):
        kg.download("covid", tmp_path / "c")


def test_incomplete_download_and_unknown_name(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    _fake_kaggle(monkeypatch, lambda c, d: (d / "other.txt").write_text("x"))
    with pytest.raises(TrainlabError, match="lacks train_11.npy"):
        kg.download("phoneme", tmp_path / "ph")
    with pytest.raises(TrainlabError, match="unknown dataset"):
        kg.download("mnist", tmp_path / "m")


def test_cli_download(
    no_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["data", "download", "covid", "--dest", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainlab: error: no Kaggle credentials") and "\n" not in err
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    _fake_kaggle(monkeypatch, _zip_covid)
    assert main(["data", "download", "covid", "--dest", str(tmp_path / "b")]) == 0
    out = capsys.readouterr()
    assert "covid.train.csv" in out.out and SECRET not in out.out + out.err
    assert (tmp_path / "b" / "covid.test.csv").is_file()
    assert main(["data", "download", "nope", "--dest", str(tmp_path)]) == 2


def test_missing_dependency_of_the_package_is_named(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("kaggle"):
            raise ModuleNotFoundError("No module named 'six'", name="six")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("KAGGLE_API_TOKEN", SECRET)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(TrainlabError, match=r"it needs 'six'.*pip install six"):
        kg.download("covid", tmp_path / "c")
