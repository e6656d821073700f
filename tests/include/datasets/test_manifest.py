"""Dataset manifests: what changes their digest and what does not."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from include.datasets.manifest import ManifestError, manifest_from_dir, manifest_from_s3_listing


def test_manifest_lists_every_visible_file_with_size_and_sha256(sample_dataset):
    manifest = manifest_from_dir(sample_dataset)
    files = sorted(
        p for p in sample_dataset.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    assert [e.path for e in manifest.entries] == [
        p.relative_to(sample_dataset).as_posix() for p in files
    ]
    first = manifest.entries[0]
    assert first.size == files[0].stat().st_size
    assert first.hash == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert manifest.summary()["files"] == len(files)
    assert manifest.to_dict()["digest"] == manifest.digest


def test_manifest_digest_is_content_not_location(sample_dataset, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(sample_dataset, copy)
    (copy / ".DS_Store").write_bytes(b"hidden: Spark and the uploads skip it")
    assert manifest_from_dir(copy).digest == manifest_from_dir(sample_dataset).digest

    image = next(copy.rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")  # same name, other content
    assert manifest_from_dir(copy).digest != manifest_from_dir(sample_dataset).digest


def test_manifest_digest_changes_when_a_file_is_added_removed_or_renamed(sample_dataset, tmp_path):
    base = manifest_from_dir(sample_dataset).digest
    for change in ("add", "remove", "rename"):
        copy = tmp_path / change
        shutil.copytree(sample_dataset, copy)
        image = next(copy.rglob("*.jpg"))
        if change == "add":
            shutil.copy(image, image.with_name("new.jpg"))
        elif change == "remove":
            image.unlink()
        else:
            image.rename(image.with_name("renamed.jpg"))
        assert manifest_from_dir(copy).digest != base, change


def test_manifest_of_a_missing_or_empty_folder_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        manifest_from_dir(tmp_path / "nope")
    (tmp_path / "empty" / "Training").mkdir(parents=True)
    with pytest.raises(ManifestError, match="holds no files"):
        manifest_from_dir(tmp_path / "empty")


def test_s3_manifest_comes_from_the_listing_alone():
    listing = [
        {"Key": "data/fruits/Training/Kiwi/1.jpg", "Size": 10, "ETag": '"abc"'},
        {"Key": "data/fruits/Training/Kiwi/", "Size": 0, "ETag": '"d41d8"'},  # folder marker
        {"Key": "data/fruits/Training/.hidden/x.jpg", "Size": 3, "ETag": '"h"'},
        {"Key": "data/fruitsX/other.jpg", "Size": 3, "ETag": '"o"'},  # another prefix
        {
            "Key": "data/fruits/Test/Lemon/2.jpg",
            "Size": 20,
            "ETag": '"multipart-2"',
            "ChecksumSHA256": "c2hh",
        },
    ]
    manifest = manifest_from_s3_listing("s3://bucket/data/fruits/", listing)
    assert manifest.root == "s3://bucket/data/fruits/"
    assert [(e.path, e.size, e.hash) for e in manifest.entries] == [
        ("Test/Lemon/2.jpg", 20, "sha256:c2hh"),
        ("Training/Kiwi/1.jpg", 10, "etag:abc"),
    ]
    changed = [dict(item) for item in listing]
    changed[0]["ETag"] = '"abd"'
    assert manifest_from_s3_listing("s3://bucket/data/fruits", changed).digest != manifest.digest
    with pytest.raises(ManifestError, match="no objects under"):
        manifest_from_s3_listing("s3://bucket/empty/", listing)
    with pytest.raises(ManifestError, match="not an s3:// URI"):
        manifest_from_s3_listing("/local/path", listing)
