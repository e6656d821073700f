from __future__ import annotations

import hashlib

from PIL import Image

from include.datasets.sample import DEFAULT_CLASSES, generate_sample_dataset


def _digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.jpg"))
    }


def test_layout_counts_and_determinism(tmp_path):
    counts = generate_sample_dataset(tmp_path / "a", per_label=3, test_per_label=1)
    generate_sample_dataset(tmp_path / "b", per_label=3, test_per_label=1)
    assert counts == {"Training": 3 * len(DEFAULT_CLASSES), "Test": len(DEFAULT_CLASSES)}
    first = _digest(tmp_path / "a")
    assert first == _digest(tmp_path / "b")
    assert "Training/Banana/2_100.jpg" in first
    assert "Test/Kiwi/0_100.jpg" in first
    with Image.open(tmp_path / "a" / "Training" / "Banana" / "0_100.jpg") as img:
        assert img.size == (100, 100)
        assert img.mode == "RGB"


def test_classes_look_different(tmp_path):
    generate_sample_dataset(tmp_path, per_label=1, test_per_label=0)
    means = {}
    for style in DEFAULT_CLASSES:
        with Image.open(tmp_path / "Training" / style.label / "0_100.jpg") as img:
            means[style.label] = tuple(sum(c) / len(c) for c in zip(*img.getdata(), strict=True))
    # every pair of classes differs by a visible amount in mean colour
    labels = list(means)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            distance = sum(abs(x - y) for x, y in zip(means[a], means[b], strict=True))
            assert distance > 3, (a, b, distance)
