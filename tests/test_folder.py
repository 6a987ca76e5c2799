"""ImageFolder: formats, EXIF orientation, recursion and order, unreadable files skipped, clear errors."""

from __future__ import annotations

import concurrent.futures
import io
import logging
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import claimed_size_png

from muraljax.data import folder
from muraljax.data.errors import DataError


def _gradient(height: int = 24, width: int = 32) -> np.ndarray:
  rows, cols = np.mgrid[0:height, 0:width]
  return np.stack([rows * 255 // height, cols * 255 // width, np.full_like(rows, 90)], -1).astype(np.uint8)


def _write_png48(path, rgb16: np.ndarray) -> None:
  """A 48-bit RGB PNG written by hand (PIL cannot write one)."""
  height, width, _ = rgb16.shape
  raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) +
                   chunk(b"IEND", b""))


@pytest.fixture
def image_root(tmp_path):
  Image.fromarray(_gradient()).save(tmp_path / "a_rgb.jpg", quality=95)
  Image.fromarray(_gradient()).save(tmp_path / "b_rgb.PNG")
  Image.fromarray(np.full((20, 20), 100, np.uint8)).save(tmp_path / "c_gray.png")
  rgba = np.zeros((20, 20, 4), np.uint8)
  rgba[..., 0], rgba[:, 10:, 3] = 200, 255  # left half fully transparent
  Image.fromarray(rgba).save(tmp_path / "d_rgba.png")
  Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(tmp_path / "e_gray16.png")
  rgb16 = np.zeros((8, 8, 3), np.uint16)
  rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 40000, 0
  _write_png48(tmp_path / "f_rgb48.png", rgb16)
  # Stored 32 wide x 24 tall, EXIF orientation 6: shown rotated 90 degrees clockwise, 24 wide x 32 tall.
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(_gradient()).save(tmp_path / "g_rotated.jpg", exif=exif, quality=95)
  (tmp_path / "h_corrupt.png").write_bytes(np.random.default_rng(0).bytes(500))
  buffer = io.BytesIO()
  Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
  (tmp_path / "i_truncated.jpg").write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
  (tmp_path / "nested" / "deeper").mkdir(parents=True)
  Image.fromarray(_gradient(10, 12)).save(tmp_path / "nested" / "deeper" / "j_nested.tiff")
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / ".hidden.png").write_bytes(b"")
  return tmp_path


def _index(source: folder.ImageFolder, name: str) -> int:
  return [path.endswith(name) for path in source.paths].index(True)


def test_lists_images_recursively_in_sorted_order(image_root):
  source = folder.ImageFolder(image_root)
  names = [path[len(str(image_root)) + 1:] for path in source.paths]
  assert names == ["a_rgb.jpg", "b_rgb.PNG", "c_gray.png", "d_rgba.png", "e_gray16.png", "f_rgb48.png",
                   "g_rotated.jpg", "h_corrupt.png", "i_truncated.jpg", "nested/deeper/j_nested.tiff"]
  assert len(source) == 10


def test_formats_become_rgb_uint8(image_root):
  source = folder.ImageFolder(image_root)
  for name in ("a_rgb.jpg", "b_rgb.PNG", "c_gray.png", "d_rgba.png", "e_gray16.png", "f_rgb48.png", "j_nested.tiff"):
    image = source[_index(source, name)]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3, name
  np.testing.assert_array_equal(source[_index(source, "b_rgb.PNG")], _gradient())
  np.testing.assert_array_equal(source[_index(source, "c_gray.png")], np.full((20, 20, 3), 100))
  rgba = source[_index(source, "d_rgba.png")]
  np.testing.assert_array_equal(rgba[:, :10], 255)  # transparent: white
  np.testing.assert_array_equal(rgba[:, 10:], np.broadcast_to([200, 0, 0], (20, 10, 3)))
  assert abs(int(source[_index(source, "e_gray16.png")][0, 0, 0]) - 40000 / 257) <= 1  # scaled, not clipped
  np.testing.assert_allclose(source[_index(source, "f_rgb48.png")][0, 0], [255, 40000 / 257, 0], atol=1.5)


def test_exif_orientation_is_applied(image_root):
  source = folder.ImageFolder(image_root)
  image = source[_index(source, "g_rotated.jpg")].astype(int)
  assert image.shape == (32, 24, 3)
  # Rotating clockwise puts the stored image's first row (red = 0) on the right, its first column (green = 0) on top.
  assert image[:, -1, 0].mean() < 20 and image[:, 0, 0].mean() > 200
  assert image[0, :, 1].mean() < 20 and image[-1, :, 1].mean() > 200


def test_min_side_upscales_small_images(image_root):
  source = folder.ImageFolder(image_root, min_side=40)
  assert source[_index(source, "b_rgb.PNG")].shape == (40, 53, 3)
  assert source[_index(source, "j_nested.tiff")].shape == (40, 48, 3)


def test_unreadable_files_are_skipped_counted_and_reported(image_root, caplog):
  source = folder.ImageFolder(image_root)
  corrupt, truncated = _index(source, "h_corrupt.png"), _index(source, "i_truncated.jpg")
  with caplog.at_level(logging.WARNING):
    images = [source[i] for i in range(len(source))]
  assert len(images) == len(source)
  # Both bad files fall back to the next readable one.
  np.testing.assert_array_equal(images[corrupt], images[-1])
  np.testing.assert_array_equal(images[truncated], images[-1])
  assert source.skipped == sorted([source.paths[corrupt], source.paths[truncated]])
  warnings = " ".join(record.getMessage() for record in caplog.records)
  assert "h_corrupt.png" in warnings and "i_truncated.jpg" in warnings
  source[corrupt]  # a known-bad file is not decoded or reported again
  assert len(source.skipped) == 2


def test_a_file_read_by_many_threads_at_once_is_warned_once_and_the_source_pickles(image_root, caplog):
  source = folder.ImageFolder(image_root)
  corrupt = _index(source, "h_corrupt.png")
  with caplog.at_level(logging.WARNING), concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda _: source[corrupt], range(32)))
  assert sum("h_corrupt.png" in record.getMessage() for record in caplog.records) == 1
  copy = pickle.loads(pickle.dumps(source))  # as grain hands it to worker processes
  np.testing.assert_array_equal(copy[corrupt], source[corrupt])


def test_an_image_above_the_pixel_limit_is_skipped_before_decoding(tmp_path, caplog):
  Image.fromarray(_gradient()).save(tmp_path / "a_small.png")
  claimed_size_png(tmp_path / "b_huge.png", 12500, 12000)
  source = folder.ImageFolder(tmp_path, max_megapixels=100)
  with caplog.at_level(logging.WARNING):
    np.testing.assert_array_equal(source[1], source[0])  # falls back to the readable one
  assert "b_huge.png is 12500x12000 (150 megapixels), above the limit of 100" in caplog.text
  assert source.skipped == [str(tmp_path / "b_huge.png")]


def test_subset_falls_back_inside_itself(image_root):
  source = folder.ImageFolder(image_root)
  subset = source.subset([_index(source, "h_corrupt.png"), _index(source, "b_rgb.PNG")])
  assert len(subset) == 2
  np.testing.assert_array_equal(subset[0], _gradient())


def test_no_readable_image_raises(tmp_path):
  (tmp_path / "bad.jpg").write_bytes(b"garbage")
  with pytest.raises(DataError, match="could be decoded"):
    folder.ImageFolder(tmp_path)[0]


def test_missing_empty_and_file_roots_raise_clear_errors(tmp_path):
  with pytest.raises(DataError, match=r"does not exist; pass the directory"):
    folder.ImageFolder(tmp_path / "nowhere")
  (tmp_path / "empty" / "sub").mkdir(parents=True)
  (tmp_path / "empty" / "readme.txt").write_text("no images here")
  with pytest.raises(DataError, match=r"No images .* found under .*empty"):
    folder.ImageFolder(tmp_path / "empty")
  (tmp_path / "file.png").write_bytes(b"")
  with pytest.raises(DataError, match="is a file, not a directory"):
    folder.ImageFolder(tmp_path / "file.png")
