"""publish/media.py and the archive's images: resized, upright, without the camera's metadata,
the same bytes under the same name in every run; remote images copied once from a real local
HTTP server when asked; staged before a send; never removed."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from PIL import Image

from conftest import write_issue
from newsletter_mailer.compose.check import check_issue
from newsletter_mailer.compose.images import ImageResolver
from newsletter_mailer.compose.issue import read_issue
from newsletter_mailer.compose.render import render_issue
from newsletter_mailer.config import Settings, load_settings
from newsletter_mailer.errors import IssueError
from newsletter_mailer.publish.archive import Archive, SentIssue
from newsletter_mailer.publish.media import served_bytes
from newsletter_mailer.publish.site import before_send, build_site, write_site

SITE = "https://news.example.org/archive"
SENT = dt.datetime(2027, 1, 5, 9, 0, tzinfo=dt.UTC).timestamp()


def settings_in(root: Path, publish: str = "") -> Settings:
    (root / "newsletter.toml").write_text(
        '[newsletter]\nname = "N"\nfrom = "n@example.org"\nbase_url = "https://n.example.org"\n'
        f'[publish]\nbase_url = "{SITE}"\n{publish}\n'
    )
    return load_settings(workspace=root, env={"NEWSLETTER_SECRET": "s"})


def striped(size: tuple[int, int]) -> Image.Image:
    """Dark vertical stripes on red: which way is up shows after a rotation."""
    image = Image.new("RGB", size, (200, 40, 30))
    for x in range(0, size[0], 50):
        image.paste((10, 10, 10), (x, 0, x + 10, size[1]))
    return image


def camera_photo(path: Path, size: tuple[int, int], orientation: int = 1) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SentinelCam"  # the camera's make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS: where it was taken
    striped(size).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_a_photo_is_resized_turned_upright_and_stripped(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    camera_photo(tmp_path / "wide.jpg", (3000, 2000))
    camera_photo(tmp_path / "phone.jpg", (2400, 1600), orientation=6)
    issue = read_issue(write_issue(tmp_path, "subject: S", "![wide](wide.jpg)\n\n![phone](phone.jpg)\n"))
    resolver = ImageResolver(issue, settings)
    wide, phone = resolver.served("wide.jpg", 1), resolver.served("phone.jpg", 1)
    assert wide is not None and phone is not None
    for image, size in ((wide, (1104, 736)), (phone, (1104, 1656))):
        data = served_bytes(image)
        assert b"SentinelCam" not in data and b"Exif" not in data
        with Image.open(io.BytesIO(data)) as served:
            assert served.format == "JPEG" and served.size == size == (image.width, image.height)
            assert dict(served.getexif()) == {}
            if image is phone:  # turned a quarter: the stripes now run across
                column = [served.getpixel((5, y)) for y in range(0, 200)]
                assert len({pixel[0] > 100 for pixel in column}) == 2  # type: ignore[index]


def test_the_same_photo_gives_the_same_name_and_bytes_in_another_process(tmp_path: Path) -> None:
    camera_photo(tmp_path / "p.jpg", (2000, 1500))
    write_issue(tmp_path, "subject: S", "![p](p.jpg)\n")
    settings_in(tmp_path)
    script = (
        "import hashlib, sys; from pathlib import Path\n"
        "from newsletter_mailer.config import load_settings\n"
        "from newsletter_mailer.compose.issue import read_issue\n"
        "from newsletter_mailer.compose.images import ImageResolver\n"
        "from newsletter_mailer.publish.media import served_bytes\n"
        "root = Path(sys.argv[1]); s = load_settings(workspace=root, env={'NEWSLETTER_SECRET': 'x'})\n"
        "(image,) = ImageResolver(read_issue(root / 'issue.md'), s).all()\n"
        "print(image.name, hashlib.sha256(served_bytes(image)).hexdigest())\n"
    )
    runs = {
        subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1 and re.fullmatch(r"[0-9a-f]{20}\.jpg [0-9a-f]{64}\n", runs.pop())


def test_an_animated_gif_is_served_as_it_is(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    frames = [Image.new("RGB", (1500, 100), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    issue = read_issue(write_issue(tmp_path, "subject: S", "![moving](a.gif)\n"))
    (image,) = ImageResolver(issue, settings).all()
    assert image.animated and served_bytes(image) == (tmp_path / "a.gif").read_bytes()
    assert image.display() == (552, 37)


def test_a_truncated_photo_stops_publishing_with_its_name(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    data = (camera_photo(tmp_path / "p.jpg", (1600, 1200))).read_bytes()
    (tmp_path / "p.jpg").write_bytes(data[: len(data) // 3])
    issue = read_issue(write_issue(tmp_path, "subject: S", "![cut](p.jpg)\n"))
    (image,) = ImageResolver(issue, settings).all()
    with pytest.raises(IssueError, match="cannot be decoded"):
        served_bytes(image)


def test_the_site_serves_the_images_the_email_and_the_page_link(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    camera_photo(tmp_path / "coats.jpg", (1800, 1200))
    issue = read_issue(write_issue(tmp_path, "subject: Coats", "![Coats](coats.jpg)\n\nA ![tiny](coats.jpg) one.\n"))
    email = render_issue(issue, settings).html
    files = build_site(settings, Archive((SentIssue(issue, SENT),), ()))
    (served,) = [name for name in files if name.startswith("media/")]
    assert f'src="{SITE}/{served}"' in email
    page = files["issues/issue/index.html"].decode()
    assert page.count(f'src="../../{served}" ') == 2 and 'width="1104" height="736"' in page
    assert f'<meta property="og:image" content="{SITE}/{served}">' in page
    assert f'src="{SITE}/{served}"' in files["feed.xml"].decode().replace("&quot;", '"')


def test_images_are_on_the_site_before_the_send_and_never_removed(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    camera_photo(tmp_path / "coats.jpg", (900, 600))
    issue = read_issue(write_issue(tmp_path, "subject: Coats", "![Coats](coats.jpg)\n"))
    assert before_send(settings, issue) == 1 and before_send(settings, issue) == 0
    (media,) = (tmp_path / "site" / "media").iterdir()
    camera_photo(tmp_path / "coats.jpg", (900, 601))  # the editor swaps the photo after the send
    _, _, removed = write_site(tmp_path / "site", build_site(settings, Archive((), ())))
    assert removed == 0 and media.is_file()  # the sent email still shows the old one
    (tmp_path / "coats.jpg").unlink()
    assert before_send(settings, issue) == 0  # the send's check will say what is wrong, with the rest


class _Images(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012  (the server's record, read by the test)
    body = b""

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        body = self.body * (1 + 6 * 1024 * 1024 // len(self.body)) if self.path.startswith("/huge") else self.body
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving one JPEG (and a 404, and one over 5 MB)."""
    buffer = io.BytesIO()
    striped((1600, 900)).save(buffer, format="JPEG")
    _Images.body, _Images.hits = buffer.getvalue(), []
    server = HTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_remote_images_stay_remote_unless_copied_then_are_downloaded_once(tmp_path: Path, image_server: str) -> None:
    url = f"{image_server}/photos/river.jpg"
    issue = read_issue(write_issue(tmp_path, "subject: S", f"![The river]({url})\n"))
    remote = render_issue(issue, settings_in(tmp_path)).html
    assert f'src="{url}"' in remote and _Images.hits == []
    settings = settings_in(tmp_path, "copy_remote_images = true")
    copied = render_issue(issue, settings).html
    files = build_site(settings, Archive((SentIssue(issue, SENT),), ()))
    render_issue(issue, settings)
    assert _Images.hits == ["/photos/river.jpg"]  # once, however often it is rendered or published
    (served,) = [name for name in files if name.startswith("media/")]
    (tag,) = re.findall(rf'<img [^>]*src="{SITE}/{served}"[^>]*>', copied)
    assert 'width="552"' in tag and 'height="310"' in tag
    assert hashlib.sha256(files[served]).hexdigest() != hashlib.sha256(_Images.body).hexdigest()


@pytest.mark.parametrize(("path", "reason"), [("/missing.jpg", "404 Not Found"), ("/huge.jpg", "at most 5 MB")])
def test_a_remote_image_that_cannot_be_copied_is_refused_at_its_line(
    tmp_path: Path, image_server: str, path: str, reason: str
) -> None:
    settings = settings_in(tmp_path, "copy_remote_images = true")
    issue = write_issue(tmp_path, "subject: S", f"Hi.\n\n![The river]({image_server}{path})\n")
    errors = [f for f in check_issue(issue, settings) if f.level == "error"]
    assert [(f.line, reason in f.message) for f in errors] == [(6, True)], [str(f) for f in errors]
    unreachable = write_issue(tmp_path, "subject: S", "![x](http://127.0.0.1:9/nothing.jpg)\n", name="b.md")
    assert any("could not be copied" in f.message for f in check_issue(unreachable, settings))
