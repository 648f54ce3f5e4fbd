"""Uploaded images, checked before anything decodes them in full.

`load_upload(data)` returns an RGB image or raises `UploadError` with a message a learner can
act on: not an image, a format we do not take, too many pixels (or a decompression bomb),
corrupt or truncated. Nothing here changes Pillow's global settings, so one session's upload
never changes how another's is read.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
MAX_PIXELS = 16_000_000
MAX_BYTES = 20 * 1024 * 1024


class UploadError(ValueError):
    """The upload cannot be used; the message says why and what would work."""


def _formats_text() -> str:
    return ", ".join(ALLOWED_FORMATS[:-1]) + " or " + ALLOWED_FORMATS[-1]


def _other_format(data: bytes) -> str | None:
    """The format Pillow recognises when it is not one we accept (reads the header only)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format
    except Exception:
        return None


def load_upload(data: bytes, name: str = "the file") -> Image.Image:
    """The uploaded image as a fully loaded RGB image, or UploadError."""
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > MAX_BYTES:
        raise UploadError(
            f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB."
        )
    try:
        im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise UploadError(
            f"{name} declares more pixels than Pillow will decode ({e}); "
            "it looks like a decompression bomb and was not opened."
        ) from e
    except UnidentifiedImageError as e:
        other = _other_format(data)
        if other:
            raise UploadError(
                f"{name} is a {other} image; this page takes {_formats_text()}."
            ) from e
        raise UploadError(f"{name} is not an image ({_formats_text()} are accepted).") from e
    with im:
        width, height = im.size
        if width * height > MAX_PIXELS:
            raise UploadError(
                f"{name} is {width} × {height} = {width * height / 1e6:.1f} megapixels; "
                f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Make it smaller and try again."
            )
        try:
            im.load()
            return _rgb(im)
        except Image.DecompressionBombError as e:
            raise UploadError(f"{name} looks like a decompression bomb ({e}).") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise UploadError(
                f"{name} is a damaged {im.format} file and could not be decoded ({e})."
            ) from e


def _rgb(im: Image.Image) -> Image.Image:
    """RGB, with transparency flattened onto white (what a viewer shows)."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")
