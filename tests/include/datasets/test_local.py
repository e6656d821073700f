"""Dataset folder validation: fail fast with a clear message, count what is there."""

from __future__ import annotations

import pytest

from include.datasets.local import DatasetError, validate_dataset


def test_sample_dataset_counts(sample_dataset):
    summary = validate_dataset(sample_dataset)
    assert summary.by_split == {"Training": 32, "Test": 16}
    assert summary.images == 48
    assert len(summary.labels) == 8
    assert summary.by_split_label["Training"]["Kiwi"] == 4
    assert summary.to_dict()["labels"] == summary.labels


def test_bad_and_hidden_files_are_reported_not_counted(tmp_path):
    label = tmp_path / "Training" / "Kiwi"
    label.mkdir(parents=True)
    (label / "a.jpg").write_bytes(b"\xff\xd8data")
    (label / "empty.jpg").write_bytes(b"")
    (label / "notes.txt").write_text("x")
    (label / ".hidden.jpg").write_bytes(b"x")
    summary = validate_dataset(tmp_path)
    assert summary.images == 1
    assert summary.empty_files == ["Training/Kiwi/empty.jpg"]
    assert summary.other_files == ["Training/Kiwi/notes.txt"]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (None, "does not exist"),
        ([], "has no split folders"),
        (["Training/"], "no class folders"),
        (["Training/Kiwi/"], "0 non-empty image"),
        (["Training/Kiwi/empty.jpg"], "0 non-empty image"),
    ],
)
def test_unusable_folders_are_refused_clearly(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout is not None:
        root.mkdir()
        for item in layout:
            path = root / item
            if item.endswith("/"):
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True)
                path.write_bytes(b"")
    with pytest.raises(DatasetError, match=message):
        validate_dataset(root)


def test_a_file_is_not_a_dataset(tmp_path):
    path = tmp_path / "f.zip"
    path.write_bytes(b"x")
    with pytest.raises(DatasetError, match="is not a folder"):
        validate_dataset(path)
