"""Build data/photos/ from the public-domain / CC0 sample photos that scikit-image ships.

Each chosen photo is converted to an RGB JPEG (longest side at most 640 px, quality 82,
no metadata) and data/photos/CREDITS.md is rewritten from the table below. The output is
deterministic for a given Pillow version: run it twice and nothing changes.

    .venv/bin/python scripts/build_photos.py

Only photos whose provenance in scikit-image's own docstrings states public domain or
CC0 (or "no known copyright restrictions") are used. Left out on purpose:
motorcycle_left.png (Middlebury 2014 stereo set, no licence stated) and moon.png (no
provenance stated).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "data" / "photos"
MAX_SIDE = 640
QUALITY = 82


@dataclass(frozen=True)
class Photo:
    """One photo: its skimage source file, output name and credit line."""

    source: str
    out: str
    subject: str
    author: str
    origin: str
    licence: str


PHOTOS: list[Photo] = [
    Photo(
        "chelsea.png",
        "cat_chelsea.jpg",
        "Chelsea the cat: close-up of a tabby cat's face",
        "Stefan van der Walt",
        "scikit-image sample data (`skimage.data.chelsea`)",
        "CC0 1.0 (no copyright restrictions, dedicated by the photographer)",
    ),
    Photo(
        "coffee.png",
        "coffee_cup.jpg",
        "An espresso in a red cup and saucer on a wooden table (Pikolo Espresso Bar)",
        "Rachel Michetti",
        "scikit-image sample data (`skimage.data.coffee`)",
        "CC0 1.0 (no copyright restrictions, dedicated by the photographer)",
    ),
    Photo(
        "astronaut.png",
        "astronaut_eileen_collins.jpg",
        "NASA astronaut Eileen Collins in an orange flight suit, with flag and shuttle model",
        "NASA",
        "NASA Great Images database, https://flic.kr/p/r9qvLn, via scikit-image "
        "(`skimage.data.astronaut`)",
        "Public domain (work of NASA, no known copyright restrictions)",
    ),
    Photo(
        "rocket.jpg",
        "rocket_falcon9_launch.jpg",
        "Falcon 9 carrying DSCOVR on the pad at night, Launch Complex 40, Cape Canaveral",
        "SpaceX",
        "SpaceX Photos on Flickr, https://www.flickr.com/photos/spacexphotos/16511594820/, "
        "via scikit-image (`skimage.data.rocket`)",
        "Public domain (released into the public domain by SpaceX in March 2015)",
    ),
    Photo(
        "hubble_deep_field.jpg",
        "hubble_extreme_deep_field.jpg",
        "The Hubble eXtreme Deep Field: thousands of distant galaxies",
        "NASA, ESA (Hubble Space Telescope)",
        "HubbleSite news release 2012-37, via scikit-image (`skimage.data.hubble_deep_field`)",
        "Public domain (NASA imagery, freely usable per NASA media guidelines)",
    ),
    Photo(
        "camera.png",
        "photographer_tripod.jpg",
        "A photographer looking through a camera on a tripod in a park (grayscale)",
        "Lav Varshney",
        "scikit-image sample data (`skimage.data.camera`)",
        "CC0 1.0 (no copyright restrictions, dedicated by the photographer)",
    ),
    Photo(
        "coins.png",
        "coins_pompeii.jpg",
        "Greek coins from Pompeii on a dark background (grayscale)",
        "Brooklyn Museum",
        "Brooklyn Museum Collection, "
        "https://www.brooklynmuseum.org/opencollection/archives/image/51611, "
        "via scikit-image (`skimage.data.coins`)",
        "No known copyright restrictions (as published by the Brooklyn Museum)",
    ),
    Photo(
        "grass.png",
        "grass_closeup.jpg",
        "Close-up of a patch of grass (grayscale)",
        "linolafett (DeviantArt)",
        "https://www.deviantart.com/linolafett/art/Grass-01-434853879, cropped and "
        "converted by scikit-image (`skimage.data.grass`)",
        "CC0 1.0",
    ),
    Photo(
        "gravel.png",
        "gravel_closeup.jpg",
        "Close-up of loose gravel (grayscale)",
        "CC0Textures (now ambientCG)",
        "https://cc0textures.com/view.php?tex=Gravel04, cropped and converted by "
        "scikit-image (`skimage.data.gravel`)",
        "CC0 1.0",
    ),
]


def skimage_data_dir() -> Path:
    """Directory of scikit-image's bundled sample data, found without importing skimage."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def convert(src: Path, dst: Path) -> None:
    """Write src as an RGB JPEG with its longest side at most MAX_SIDE pixels."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        if max(im.size) > MAX_SIDE:
            scale = MAX_SIDE / max(im.size)
            size = (round(im.width * scale), round(im.height * scale))
            im = im.resize(size, Image.Resampling.LANCZOS)
        im.save(dst, "JPEG", quality=QUALITY, optimize=True, progressive=False)


def credits_markdown() -> str:
    """The CREDITS.md text for PHOTOS."""
    lines = [
        "# Photo credits",
        "",
        "Every photo here is a real photograph taken from the sample data that ships with",
        "scikit-image (BSD-3-Clause package; the images carry their own terms, listed below",
        "as scikit-image documents them). They were resized to at most 640 px and re-encoded",
        "as JPEG by `scripts/build_photos.py`; nothing else was changed.",
        "",
        "| file | subject | author | source | licence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in PHOTOS:
        lines.append(f"| `{p.out}` | {p.subject} | {p.author} | {p.origin} | {p.licence} |")
    lines += [
        "",
        "Regenerate with `.venv/bin/python scripts/build_photos.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Convert every photo and rewrite CREDITS.md."""
    src_dir = skimage_data_dir()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for p in PHOTOS:
        convert(src_dir / p.source, OUT_DIR / p.out)
        print(f"{p.out}: {(OUT_DIR / p.out).stat().st_size // 1024} KiB")
    (OUT_DIR / "CREDITS.md").write_text(credits_markdown(), encoding="utf-8")
    print(f"wrote {len(PHOTOS)} photos and CREDITS.md to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
