"""``newsletter publish``: the whole site built in memory from the sent issues, then written so
that a second run changes no byte (a file is rewritten only when its bytes differ, and every
date comes from the journal), and files of an earlier run that are no longer part of the site
are removed, but only those the manifest says ``publish`` wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..compose.i18n import is_same_language, language_name
from ..compose.images import ImageResolver
from ..compose.issue import Issue, read_issue
from ..compose.online import issue_path
from ..compose.translations import translations_of
from ..config import Settings
from ..errors import IssueError, UserInputError
from ..store.factory import existing_store
from .archive import Archive, SentIssue, find_sent
from .calendar import diary_calendar, issue_event_files
from .feed import atom_feed
from .media import served_bytes
from .page import Article, PageRenderer, Version, og_image

__all__ = [
    "MANIFEST",
    "PublishResult",
    "before_send",
    "build_site",
    "existing_media",
    "media_files",
    "publish_site",
    "sent_archive",
    "write_site",
]

MEDIA = "media/"
MANIFEST = ".newsletter-site"  # the files the last run wrote, one a line: what a later run may remove


@dataclass(frozen=True)
class PublishResult:
    out_dir: Path
    issues: tuple[str, ...]  # the published issues' keys, newest first
    written: int  # files new or changed
    unchanged: int
    removed: int  # files of an earlier run no longer in the site
    missing: tuple[str, ...]  # sent issues whose file is not in the issues folder
    issues_folder: Path


def sent_archive(settings: Settings, sent: Mapping[str, float] | None = None) -> Archive:
    """The sent issues: ``sent`` (each issue's first send, as a use case read it from the
    journal), else the journal's; no store yet means nothing sent."""
    if sent is None:
        with existing_store(settings) as store:
            sent = store.issues_sent() if store else {}
    return find_sent(settings.path(settings.publish.issues), dict(sent))


def media_files(images: ImageResolver, have: frozenset[str] = frozenset()) -> dict[str, bytes]:
    """The archive's copies of an issue's own images by their path in the site, but those in
    ``have``: a media file's name is its content, so one already written is never made again."""
    wanted = (image for image in images.all() if f"{MEDIA}{image.name}" not in have)
    return {f"{MEDIA}{image.name}": served_bytes(image) for image in wanted}


def build_site(settings: Settings, archive: Archive, have: frozenset[str] = frozenset()) -> dict[str, bytes]:
    """Every file of the site by its path relative to the site's root (media in ``have`` left
    out: they are there already)."""
    renderer = PageRenderer(settings)
    files: dict[str, bytes] = {}
    entries: list[tuple[SentIssue, Article]] = []
    for sent in archive.issues:
        images = ImageResolver(sent.issue, settings)
        translated = _translations(sent, settings.newsletter.language)
        main = settings.newsletter.language
        versions = (
            Version(main, "", language_name(main)),
            *(Version(t.tag, t.tag.lower(), language_name(t.tag)) for t in translated),
        )
        for version, one in zip(versions, (sent, *(t.sent for t in translated)), strict=True):
            files.update(_issue_files(renderer, one, version, versions, have | frozenset(files)))
        entries.append((sent, renderer.article(sent, images, absolute=True)))
    files["index.html"] = renderer.index_page(entries).encode()
    files["feed.xml"] = atom_feed(settings, entries)
    files["diary.ics"] = diary_calendar(archive.issues, settings)
    return files


@dataclass(frozen=True)
class _Translated:
    sent: SentIssue  # the translation, under the main issue's key and first send
    tag: str  # its language tag, as in its file name


def _translations(sent: SentIssue, main: str) -> list[_Translated]:
    """The issue's translations (``2026-12.fr.md`` beside ``2026-12.md``), each published beside
    it at ``issues/2026-12/fr/`` with the main issue's date; one in the main language (``main``)
    is no translation, as a send sees it (its readers get the main file)."""
    found = []
    for translation in translations_of(sent.issue.path):
        if is_same_language(translation.language, main):
            continue
        issue = dataclasses.replace(read_issue(translation.path), path=sent.issue.path)
        found.append(_Translated(SentIssue(issue, sent.sent_at), translation.language))
    return found


def _issue_files(
    renderer: PageRenderer, sent: SentIssue, version: Version, versions: tuple[Version, ...], have: frozenset[str]
) -> dict[str, bytes]:
    """One version's page, its media and its calendar files, by their path in the site."""
    images = ImageResolver(sent.issue, renderer.settings)
    files = media_files(images, have)
    article = renderer.article(sent, images, absolute=False, language=version.tag)
    folder = issue_path(sent.key, version.folder)
    page = renderer.issue_page(sent, article, og_image(sent.issue, images), versions, version.folder)
    files[f"{folder}index.html"] = page.encode()
    for name, data in issue_event_files(sent, renderer.settings, version.tag).items():
        files[f"{folder}events/{name}"] = data
    return files


def existing_media(out: Path) -> frozenset[str]:
    """The media files a site folder has (by path in the site)."""
    folder = out / MEDIA
    return frozenset(f"{MEDIA}{p.name}" for p in folder.iterdir() if p.is_file()) if folder.is_dir() else frozenset()


def publish_site(
    settings: Settings, out_dir: Path | None = None, sent: Mapping[str, float] | None = None
) -> PublishResult:
    """Write the web archive of every sent issue (``sent``, else the journal's) into ``out_dir``
    (default ``[publish] out``)."""
    out = out_dir if out_dir is not None else settings.path(settings.publish.out)
    archive = sent_archive(settings, sent)
    written, unchanged, removed = write_site(out, build_site(settings, archive, existing_media(out)))
    keys = tuple(s.key for s in archive.issues)
    folder = settings.path(settings.publish.issues)
    return PublishResult(out, keys, written, unchanged, removed, archive.missing, folder)


def before_send(settings: Settings, issue: Issue) -> int:
    """The issue's own images in the archive before any message links them (a test copy too);
    returns how many files were new. Nothing else of the site changes. ``issue``: the one the
    send rendered (the file is read once per send)."""
    if not settings.publish.enabled:
        return 0
    out = settings.path(settings.publish.out)
    try:
        files = media_files(ImageResolver(issue, settings), existing_media(out))
    except IssueError:
        return 0  # the send's check reports it, with every other finding, and refuses to send
    if not files:
        return 0
    return write_site(out, files, prune=False)[0]


def _prepare(out: Path) -> set[str]:
    """The output folder, made if its parent is there; what the last run wrote. A folder with
    other files and no manifest is someone else's: refused rather than written over."""
    if out.exists() and not out.is_dir():
        raise UserInputError("is a file, not a folder for the site: choose another -o", file=out)
    if not out.exists():
        if not out.parent.is_dir():
            raise UserInputError(f"the folder {out.parent} does not exist: create it first", file=out)
        out.mkdir()
    manifest = out / MANIFEST
    if not manifest.is_file():
        if any(out.iterdir()):
            raise UserInputError(
                "this folder has files that `newsletter publish` did not write: choose an empty or new folder", file=out
            )
        return set()
    return {line for line in manifest.read_text(encoding="utf-8").splitlines() if line}


def _write(path: Path, data: bytes) -> bool:
    """Write the file only if its bytes differ (atomically); True if written."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".publish-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)  # a public web page, readable by the web server
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True


def write_site(out: Path, files: dict[str, bytes], *, prune: bool = True) -> tuple[int, int, int]:
    """Write ``files`` under ``out``; returns (written, unchanged, removed). Media are never
    removed: an email already sent may show them. ``prune=False`` removes nothing."""
    before = _prepare(out)
    written = unchanged = 0
    for relative in sorted(files):
        if _write(out / relative, files[relative]):
            written += 1
        else:
            unchanged += 1
    stale = sorted(name for name in before - set(files) if prune and not name.startswith(MEDIA))
    for relative in stale:
        target = out / relative
        if target.resolve().is_relative_to(out.resolve()):  # a manifest line is never a way out
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            _remove_empty_parents(target.parent, out)
    kept = set(files) | {name for name in before if name.startswith(MEDIA) or not prune}
    _write(out / MANIFEST, "".join(f"{name}\n" for name in sorted(kept)).encode())
    return written, unchanged, len(stale)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
