"""Check a local Fruits-360-style dataset folder before anything is uploaded or paid for.

Layout: ``<root>/<Split>/<Label>/<image>`` (for example ``Training/Apple Red 1/0_100.jpg``).
:func:`validate_dataset` fails fast, with a message that says what is wrong, when the folder
is missing, has no split or class folders, or holds no images; it returns per-split and
per-label counts otherwise (zero-byte and non-image files are counted, not hidden).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})


class DatasetError(ValueError):
    """The dataset folder cannot be used: the message says why."""


@dataclass
class DatasetSummary:
    """What :func:`validate_dataset` found."""

    root: str
    images: int = 0
    by_split: dict[str, int] = field(default_factory=dict)
    by_split_label: dict[str, dict[str, int]] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Every label seen in any split, sorted."""
        return sorted({label for labels in self.by_split_label.values() for label in labels})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (for XCom and logs)."""
        return {**asdict(self), "labels": self.labels}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def validate_dataset(root: Path, *, min_images: int = 1) -> DatasetSummary:
    """Check ``root`` has the ``<Split>/<Label>/<image>`` layout and at least ``min_images``.

    Raises :class:`DatasetError` with a clear message otherwise. Hidden files and folders
    are ignored (Spark's binaryFile reader skips them too).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a folder")
    splits = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    if not splits:
        raise DatasetError(
            f"dataset folder {root} has no split folders: expected <split>/<label>/<image>, "
            "e.g. Training/Apple Red 1/0_100.jpg"
        )
    summary = DatasetSummary(root=str(root))
    for split in splits:
        labels = sorted(p for p in split.iterdir() if p.is_dir() and _visible(p))
        if not labels:
            continue
        per_label: dict[str, int] = {}
        for label in labels:
            count = 0
            for path in sorted(label.rglob("*")):
                if not path.is_file() or not _visible(path):
                    continue
                relative = path.relative_to(root).as_posix()
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    summary.other_files.append(relative)
                elif path.stat().st_size == 0:
                    summary.empty_files.append(relative)
                else:
                    count += 1
            per_label[label.name] = count
        summary.by_split_label[split.name] = per_label
        summary.by_split[split.name] = sum(per_label.values())
    if not summary.by_split_label:
        names = ", ".join(p.name for p in splits)
        raise DatasetError(
            f"dataset folder {root} has split folders ({names}) but no class folders in them: "
            "expected <split>/<label>/<image>"
        )
    summary.images = sum(summary.by_split.values())
    if summary.images < min_images:
        raise DatasetError(
            f"dataset folder {root} has {summary.images} non-empty image(s) "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); at least {min_images} needed"
        )
    return summary
