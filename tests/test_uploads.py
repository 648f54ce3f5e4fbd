"""Every bad upload gets a clear message; good ones come back as RGB; Pillow is left as found."""

import io
import struct
import zlib

import pytest
from PIL import Image

from lib.core.uploads import MAX_BYTES, UploadError, load_upload


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny (wrong) data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_each_accepted_format_loads_as_rgb(fmt):
    data = encode(Image.new("RGB", (40, 30), (200, 30, 30)), fmt)
    im = load_upload(data, "photo")
    assert im.mode == "RGB" and im.size == (40, 30)


def test_transparency_is_flattened_onto_white():
    data = encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG")
    assert load_upload(data).getpixel((0, 0)) == (255, 255, 255)


def test_an_empty_file_is_refused():
    with pytest.raises(UploadError, match="empty"):
        load_upload(b"", "nothing.png")


def test_a_text_file_is_not_an_image():
    with pytest.raises(UploadError, match="notes.png is not an image"):
        load_upload(b"these are my notes, not a picture\n" * 20, "notes.png")


def test_an_image_in_another_format_names_the_formats_we_take():
    data = encode(Image.new("RGB", (8, 8)), "BMP")
    with pytest.raises(UploadError, match="BMP image; this page takes PNG, JPEG, WEBP or GIF"):
        load_upload(data, "scan.bmp")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_a_truncated_image_is_reported_as_damaged(fmt):
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), fmt)
    with pytest.raises(UploadError, match="damaged"):
        load_upload(data[: len(data) // 2], "half")


def test_corrupt_bytes_after_a_valid_header_are_reported_as_damaged():
    data = bytearray(encode(Image.effect_noise((64, 64), 60).convert("RGB"), "PNG"))
    data[60:200] = b"\xff" * 140
    with pytest.raises(UploadError, match="damaged"):
        load_upload(bytes(data), "broken.png")


def test_more_than_16_megapixels_is_refused_before_decoding():
    data = png_header_claiming(5000, 4000)
    with pytest.raises(UploadError, match=r"5000 × 4000 = 20.0 megapixels; the limit is 16"):
        load_upload(data, "huge.png")


def test_a_real_20_megapixel_image_is_refused():
    data = encode(Image.new("1", (5000, 4000)), "PNG")
    with pytest.raises(UploadError, match="megapixels"):
        load_upload(data, "big.png")


def test_a_decompression_bomb_is_refused_and_pillows_limits_are_left_alone():
    before = Image.MAX_IMAGE_PIXELS
    data = png_header_claiming(30_000, 30_000)  # 900 MP in a few dozen bytes
    with pytest.raises(UploadError, match="decompression bomb"):
        load_upload(data, "bomb.png")
    assert Image.MAX_IMAGE_PIXELS == before


def test_a_file_over_the_size_limit_is_refused_unread():
    with pytest.raises(UploadError, match="MB; the limit is"):
        load_upload(b"\0" * (MAX_BYTES + 1), "big.gif")
