"""Download the two competitions' files from Kaggle through the official ``kaggle`` package.

``download("covid", dest)`` fetches ml2021spring-hw1, ``download("phoneme", dest)`` ml2021spring-hw2,
and unpacks the archives. Credentials are looked for where the ``kaggle`` package looks, *before*
the package is imported (importing it tries to authenticate and prints a long help text):
``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, ``$KAGGLE_CONFIG_DIR/kaggle.json`` or
``~/.kaggle/kaggle.json``, ``~/.kaggle/access_token``. Every failure becomes one
:class:`TrainlabError` saying what is missing and how to fix it; no message ever contains a key.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError


@dataclass(frozen=True)
class Competition:
    """A Kaggle competition and the files a complete download holds."""

    slug: str
    title: str
    expected: tuple[str, ...]  # file names (searched recursively) that must exist afterwards


COMPETITIONS: dict[str, Competition] = {
    "covid": Competition(
        "ml2021spring-hw1",
        "ML2021 Spring HW1: COVID-19 cases prediction",
        ("covid.train.csv", "covid.test.csv"),
    ),
    "phoneme": Competition(
        "ml2021spring-hw2",
        "ML2021 Spring HW2: TIMIT framewise phoneme classification",
        ("train_11.npy", "train_label_11.npy", "test_11.npy"),
    ),
}

_HOW_TO = (
    "create an API token at https://www.kaggle.com/settings (API > Create New Token) and save "
    "the downloaded kaggle.json as ~/.kaggle/kaggle.json (chmod 600), or set KAGGLE_USERNAME "
    "and KAGGLE_KEY, or KAGGLE_API_TOKEN"
)


def find_credentials(env: dict[str, str] | None = None, home: Path | None = None) -> str:
    """Where usable Kaggle credentials are, as a short description (never the secret itself).

    Args:
        env: the environment (default ``os.environ``).
        home: the home folder (default ``Path.home()``).

    Raises:
        TrainlabError: no credentials, or half of them, with instructions.
    """
    env = dict(os.environ if env is None else env)
    home = Path.home() if home is None else home
    if env.get("KAGGLE_API_TOKEN", "").strip():
        return "KAGGLE_API_TOKEN"
    user, key = env.get("KAGGLE_USERNAME", "").strip(), env.get("KAGGLE_KEY", "").strip()
    if user and key:
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    config_dir = (
        Path(env["KAGGLE_CONFIG_DIR"]) if env.get("KAGGLE_CONFIG_DIR") else home / ".kaggle"
    )
    candidates = [config_dir / "kaggle.json"]
    if not env.get("KAGGLE_CONFIG_DIR"):
        candidates.append(
            Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle" / "kaggle.json"
        )
    for path in candidates:
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise TrainlabError(
                    f"{path}: not a valid kaggle.json (expected "
                    '{"username": ..., "key": ...}); download a new one: ' + _HOW_TO
                ) from None
            if not (isinstance(data, dict) and data.get("username") and data.get("key")):
                raise TrainlabError(f"{path}: kaggle.json lacks 'username' or 'key'; " + _HOW_TO)
            return str(path)
    for name in ("access_token", "access_token.txt"):
        if (home / ".kaggle" / name).is_file():
            return str(home / ".kaggle" / name)
    if user and not key:
        raise TrainlabError(
            "KAGGLE_USERNAME is set but KAGGLE_KEY is not; set it too, or " + _HOW_TO
        )
    if key and not user:
        raise TrainlabError(
            "KAGGLE_KEY is set but KAGGLE_USERNAME is not; set it too, or " + _HOW_TO
        )
    raise TrainlabError(f"no Kaggle credentials found: {_HOW_TO}")


def download(
    name: str, dest: str | Path, *, force: bool = False, quiet: bool = False
) -> list[Path]:
    """Download competition ``name`` (``covid`` or ``phoneme``) into ``dest`` and unpack it.

    Args:
        name: a key of :data:`COMPETITIONS`.
        dest: the folder to fill (created if needed).
        force: download again even if the files are there.
        quiet: no progress output from the ``kaggle`` package.

    Returns:
        The files under ``dest`` afterwards.

    Raises:
        TrainlabError: unknown name, no credentials, no ``kaggle`` package, no network, rules not
            accepted, or an incomplete download.
    """
    if name not in COMPETITIONS:
        raise TrainlabError(f"unknown dataset {name!r}; choose one of: {', '.join(COMPETITIONS)}")
    comp = COMPETITIONS[name]
    dest = Path(dest)
    if not force and _complete(dest, comp):
        return _files(dest)
    find_credentials()
    api = _authenticated_api()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        api.competition_download_files(comp.slug, path=str(dest), force=force, quiet=quiet)
    except Exception as e:  # the kaggle package raises requests/urllib3/HTTP errors of many types
        raise TrainlabError(_explain(e, comp)) from None
    for archive in sorted(dest.glob("*.zip")):
        _unzip(archive, dest)
    if not _complete(dest, comp):
        raise TrainlabError(
            f"{dest}: the download of {comp.slug} finished but lacks "
            f"{', '.join(f for f in comp.expected if not list(dest.rglob(f)))}"
        )
    return _files(dest)


def _authenticated_api() -> Any:
    # Importing kaggle authenticates at import time and may print help or call exit(); keep both
    # out of the user's terminal and turn them into one message.
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if missing and missing != "kaggle":  # installed, but one of its own dependencies is not
            raise TrainlabError(
                f"the 'kaggle' package cannot be imported: it needs '{missing}', which is not "
                f"installed ({e}); install it with pip install {missing}"
            ) from None
        raise TrainlabError(
            f"the 'kaggle' package cannot be imported ({e}); install it with "
            "pip install 'trainlab[kaggle]' (or pip install kaggle)"
        ) from None
    except SystemExit:
        raise TrainlabError("the 'kaggle' package refused to start: " + _HOW_TO) from None
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise TrainlabError("Kaggle did not accept the credentials: " + _HOW_TO) from None
    except Exception as e:
        raise TrainlabError(f"Kaggle authentication failed ({_safe(e)}): {_HOW_TO}") from None
    return api


def _explain(e: Exception, comp: Competition) -> str:
    text = _safe(e)
    status = getattr(getattr(e, "response", None), "status_code", None) or getattr(
        e, "status", None
    )
    low = text.lower()
    if status == 401 or "401" in low or "unauthorized" in low:
        return f"Kaggle rejected the credentials (401 Unauthorized): {_HOW_TO}"
    if status == 403 or "403" in low or "forbidden" in low:
        return (
            f"Kaggle refused {comp.slug} (403 Forbidden): join the competition and accept its rules at "
            f"https://www.kaggle.com/competitions/{comp.slug}/rules, then retry"
        )
    if status == 404 or "404" in low:
        return f"Kaggle has no competition {comp.slug} (404 Not Found)"
    if isinstance(e, (ConnectionError, TimeoutError, OSError)) or any(
        w in low for w in ("connection", "resolve", "timed out", "network", "max retries")
    ):
        return (
            f"cannot reach kaggle.com to download {comp.slug} ({text}); check the network "
            "connection or proxy (HTTPS_PROXY), or download the files by hand from "
            f"https://www.kaggle.com/competitions/{comp.slug}/data"
        )
    return f"downloading {comp.slug} from Kaggle failed: {text}"


def _safe(e: BaseException) -> str:
    """The exception's first line with anything secret-looking from the environment removed."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    for var in ("KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        secret = os.environ.get(var, "")
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text or type(e).__name__


def _unzip(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                target = (dest / member.filename).resolve()
                if root != target and root not in target.parents:
                    raise TrainlabError(
                        f"{archive}: refusing to extract {member.filename!r} outside {dest}"
                    )
            zf.extractall(dest)
    except zipfile.BadZipFile:
        raise TrainlabError(
            f"{archive}: the downloaded archive is corrupt; run again with --force"
        ) from None
    archive.unlink()
    for inner in sorted(dest.rglob("*.zip")):  # competitions sometimes nest archives
        if inner != archive:
            _unzip(inner, inner.parent)


def _complete(dest: Path, comp: Competition) -> bool:
    return dest.is_dir() and all(any(dest.rglob(f)) for f in comp.expected)


def _files(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*") if p.is_file())
