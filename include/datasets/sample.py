"""A small, deterministic dataset in the Fruits-360 layout, made offline.

``<dest>/<Split>/<Label>/<n>_100.jpg``: 100x100 JPEGs on a white background, one
fruit-like shape and colour per class, with seeded jitter in position, size, hue and
noise, so that classes are distinct but not identical images. Used by ``make run`` when
no real Fruits-360 folder is given, and by the tests.

    python -m include.datasets.sample --dest data/fruits-360-sample --per-label 12
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("Training", "Test")


@dataclass(frozen=True)
class FruitStyle:
    """How one class is drawn: base RGB colour, shape, and aspect ratio."""

    label: str
    rgb: tuple[int, int, int]
    shape: str  # "ellipse" | "rectangle" | "polygon"
    aspect: float  # height / width


DEFAULT_CLASSES: tuple[FruitStyle, ...] = (
    FruitStyle("Apple Red 1", (200, 30, 40), "ellipse", 1.0),
    FruitStyle("Banana", (235, 210, 60), "ellipse", 0.35),
    FruitStyle("Kiwi", (120, 90, 50), "ellipse", 0.8),
    FruitStyle("Lemon", (250, 240, 90), "ellipse", 0.75),
    FruitStyle("Orange", (245, 140, 20), "ellipse", 1.0),
    FruitStyle("Pear", (170, 200, 70), "polygon", 1.3),
    FruitStyle("Plum", (90, 30, 90), "ellipse", 0.95),
    FruitStyle("Strawberry", (220, 20, 70), "polygon", 1.1),
)


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def render_fruit(style: FruitStyle, rng: random.Random, size: int = 100):
    """Draw one image of ``style`` (a PIL Image, RGB)."""
    from PIL import Image, ImageDraw, ImageFilter  # noqa: PLC0415 (lazy: loads PIL)

    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    width = size * rng.uniform(0.55, 0.75)
    height = min(size * 0.95, width * style.aspect)
    cx = size / 2 + rng.uniform(-6, 6)
    cy = size / 2 + rng.uniform(-6, 6)
    box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
    colour = _jitter(style.rgb, rng, 18)
    if style.shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif style.shape == "rectangle":
        draw.rectangle(box, fill=colour)
    else:  # a rounded, slightly pear/strawberry-like polygon
        x0, y0, x1, y1 = box
        points = [
            (cx, y0),
            (x1 - width * 0.2, y0 + height * 0.35),
            (x1, y1 - height * 0.2),
            (cx, y1),
            (x0, y1 - height * 0.2),
            (x0 + width * 0.2, y0 + height * 0.35),
        ]
        draw.polygon(points, fill=colour)
    # A highlight and a stem make shapes less flat; seeded so images are reproducible.
    hl = _jitter((255, 255, 255), rng, 10)
    highlight_box = (cx - width * 0.25, cy - height * 0.3, cx - width * 0.05, cy - height * 0.1)
    draw.ellipse(highlight_box, fill=hl)
    draw.line((cx, box[1], cx + rng.uniform(-4, 4), box[1] - 8), fill=(80, 60, 30), width=3)
    img = img.filter(ImageFilter.GaussianBlur(radius=1.2))
    # Seeded noise: Image.effect_noise draws from an unseeded C generator.
    noise = Image.frombytes("L", (size, size), rng.randbytes(size * size)).convert("RGB")
    return Image.blend(img, noise, 0.04)


def generate_sample_dataset(
    dest: Path,
    *,
    per_label: int = 12,
    test_per_label: int | None = None,
    classes: tuple[FruitStyle, ...] = DEFAULT_CLASSES,
    size: int = 100,
    seed: int = 42,
) -> dict[str, int]:
    """Write the dataset under ``dest`` and return the number of images per split.

    Deterministic: the same arguments give byte-identical files. Existing files with the
    same names are overwritten; other files are left alone.
    """
    test_count = per_label // 3 if test_per_label is None else test_per_label
    counts = dict.fromkeys(SPLITS, 0)
    for split, n_images in (("Training", per_label), ("Test", test_count)):
        for class_index, style in enumerate(classes):
            folder = dest / split / style.label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_images):
                rng = random.Random(f"{seed}:{split}:{class_index}:{i}")
                render_fruit(style, rng, size).save(folder / f"{i}_100.jpg", quality=92)
                counts[split] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--per-label", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    counts = generate_sample_dataset(args.dest, per_label=args.per_label, seed=args.seed)
    print(f"wrote {sum(counts.values())} images under {args.dest} ({counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
