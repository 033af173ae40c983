"""compose/images.py: the editor's own image files in the email (absolute URL under the site,
real width and height) and every hostile or broken one refused at its line by `check`."""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from conftest import write_issue
from newsletter_mailer.compose.check import check_issue
from newsletter_mailer.compose.images import MAX_IMAGE_BYTES, MAX_WIDTH, ImageResolver, is_local
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.errors import IssueError

SITE = "https://news.example.org/archive"


def settings_in(root: Path, publish: str = "") -> Settings:
    (root / "newsletter.toml").write_text(
        '[newsletter]\nname = "N"\nfrom = "n@example.org"\nbase_url = "https://n.example.org"\n'
        f'[publish]\nbase_url = "{SITE}"\n{publish}\n'
    )
    return load_settings(workspace=root, env={"NEWSLETTER_SECRET": "s"})


def photo(path: Path, size: tuple[int, int], kind: str = "JPEG", orientation: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (180, 60, 30))
    for x in range(0, size[0], 40):
        image.paste((20, 20, 20), (x, 0, x + 8, size[1]))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, format=kind, **({"exif": exif.tobytes()} if kind == "JPEG" else {}))
    return path


def issue_with(folder: Path, *sources: str) -> Path:
    body = "\n\n".join(f"![A picture of {n}]({src})" for n, src in enumerate(sources))
    return write_issue(folder, "subject: Pictures", f"Hello.\n\n{body}\n")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: what a decompression bomb
    looks like before it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_a_local_image_is_linked_under_the_site_with_its_real_size(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    photo(tmp_path / "images" / "coats.jpg", (3000, 2000))
    photo(tmp_path / "images" / "small photo.png", (400, 300), "PNG")
    photo(tmp_path / "images" / "upright.jpg", (600, 400), orientation=6)  # a phone held upright
    issue = issue_with(tmp_path, "images/coats.jpg", "images/small%20photo.png", "./images/upright.jpg")
    html = render_issue(read_issue(issue), settings).html
    images = re.findall(r"<img\b[^>]*>", html)
    found = {}
    for tag in images:
        src = re.search(r'src="([^"]+)"', tag)
        assert src is not None
        if "/media/" in src.group(1):
            width, height = re.search(r'width="(\d+)"', tag), re.search(r'height="(\d+)"', tag)
            assert width and height and "height:auto" in tag  # the box for Outlook, proportions on phones
            found[src.group(1)] = (int(width.group(1)), int(height.group(1)))
    assert sorted(found.values()) == [(400, 300), (400, 600), (552, 368)]
    assert all(re.fullmatch(rf"{SITE}/media/[0-9a-f]{{20}}\.(jpg|png)", url) for url in found)
    assert "images/coats.jpg" not in html


def test_an_image_inside_a_paragraph_is_linked_too(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    photo(tmp_path / "logo.png", (120, 40), "PNG")
    issue = write_issue(tmp_path, "subject: S", "Our logo ![the logo](logo.png) is new.\n")
    html = render_issue(read_issue(issue), settings).html
    assert re.search(rf'<img src="{SITE}/media/[0-9a-f]{{20}}\.png" width="120" height="40"', html)


HOSTILE = [
    ("../../etc/passwd", "outside the issue's folder"),
    ("/etc/passwd", "is an absolute path"),
    ("%2e%2e/%2e%2e/etc/hostname", "outside the issue's folder"),
    ("link-out.jpg", "outside the issue's folder"),
    ("dir-out/secret.jpg", "outside the issue's folder"),
    ("missing.jpg", "not found"),
    ("notes.jpg", "not an image Pillow can read"),
    ("scan.tiff", "is a TIFF, not a JPEG, PNG, GIF or WebP"),
    ("bomb.png", "claims more pixels than memory allows"),
    ("huge.png", "too large to publish"),
    ("tall.png", "too large to publish"),
    ("big.jpg", "at most 5 MB"),
]


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    photo(outside / "secret.jpg", (50, 50))
    folder = tmp_path / "ws"
    folder.mkdir()
    os.symlink(outside / "secret.jpg", folder / "link-out.jpg")
    os.symlink(outside, folder / "dir-out")
    (folder / "notes.jpg").write_text("not a picture at all")
    photo(folder / "scan.tiff", (20, 20), "TIFF")
    (folder / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (folder / "huge.png").write_bytes(png_claiming(9_000, 9_000))
    (folder / "tall.png").write_bytes(png_claiming(25_000, 10))
    (folder / "big.jpg").write_bytes(b"\xff\xd8" + os.urandom(MAX_IMAGE_BYTES))
    return folder


def test_check_refuses_every_hostile_image_at_its_line(hostile_folder: Path) -> None:
    settings = settings_in(hostile_folder)
    issue = issue_with(hostile_folder, *(src for src, _ in HOSTILE))
    findings = [f for f in check_issue(issue, settings) if f.level == "error"]
    lines = {line: n for n, line in enumerate(issue.read_text().splitlines(), 1) if line.startswith("![")}
    for n, (src, reason) in enumerate(HOSTILE):
        line = next(number for text, number in lines.items() if f"of {n}]" in text)
        matching = [f for f in findings if f.line == line and reason in f.message]
        assert len(matching) == 1, (src, reason, [str(f) for f in findings if f.line == line])
        assert "\n" not in matching[0].message and src.split("/")[0] in matching[0].message
    assert len(findings) == len(HOSTILE)  # each said once, not again by the failed render


def test_render_stops_at_a_hostile_image_with_its_line(hostile_folder: Path) -> None:
    settings = settings_in(hostile_folder)
    issue = issue_with(hostile_folder, "images-none.jpg")
    with pytest.raises(IssueError) as caught:
        render_issue(read_issue(issue), settings)
    assert caught.value.line == 6 and "not found" in caught.value.message  # ---, subject, ---, Hello., blank


def test_a_local_image_needs_the_archive(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, "enabled = false")
    photo(tmp_path / "a.jpg", (10, 10))
    findings = check_issue(issue_with(tmp_path, "a.jpg"), settings)
    assert [f.message for f in findings if f.level == "error"] == [
        "image 'a.jpg' is a file: it needs the web archive ([publish] enabled = false)"
    ]


def test_the_name_is_the_content_and_only_the_content(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    first = photo(tmp_path / "a.jpg", (800, 600))
    (tmp_path / "b.jpg").write_bytes(first.read_bytes())
    photo(tmp_path / "c.jpg", (801, 600))
    issue = read_issue(issue_with(tmp_path, "a.jpg", "b.jpg", "c.jpg"))
    resolver = ImageResolver(issue, settings)
    names = [resolver.served(src, 1) for src in ("a.jpg", "b.jpg", "c.jpg")]
    assert names[0] is not None and names[1] is not None and names[2] is not None
    assert names[0].name == names[1].name != names[2].name
    assert len(resolver.all()) == 2 and MAX_WIDTH == 1104


@pytest.mark.parametrize(
    ("src", "local"),
    [("images/x.jpg", True), ("x.png", True), ("https://e.org/x.jpg", False), ("//e.org/x", False), ("data:x", False)],
)
def test_what_counts_as_a_file(src: str, local: bool) -> None:
    assert is_local(src) is local


def test_a_webp_is_served_as_jpeg_or_png(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    Image.new("RGB", (30, 20), (1, 2, 3)).save(tmp_path / "flat.webp", format="WEBP")
    Image.new("RGBA", (30, 20), (1, 2, 3, 100)).save(tmp_path / "clear.webp", format="WEBP")
    resolver = ImageResolver(read_issue(issue_with(tmp_path, "flat.webp", "clear.webp")), settings)
    flat, clear = resolver.served("flat.webp", 1), resolver.served("clear.webp", 1)
    assert flat is not None and clear is not None
    assert (flat.format, clear.format) == ("JPEG", "PNG") and flat.name.endswith(".jpg")
    assert Image.open(io.BytesIO((tmp_path / "flat.webp").read_bytes())).format == "WEBP"
