"""Metric writing without TensorFlow: console lines on every process, TensorBoard event files on process 0.

Event files are TFRecord files of `Event` protos, built from the `tensorboard` package's plain protobuf messages
(which import no TensorFlow); without `tensorboard` installed, metrics still go to the console (and the loop's
metrics.jsonl). `ReportProgress` logs steps/s and the ETA every few steps, as clu's periodic action did.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from PIL import Image

from muraljax.metrics.image_files import to_uint8

try:
  from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
except ImportError:  # the `tensorboard` extra is not installed
  event_pb2 = None


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum of TFRecord framing. Pure Python: about 0.1 s per MB."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> bytes:
  crc = crc32c(data)
  return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord(data: bytes) -> bytes:
  """One TFRecord: uint64 length, masked crc32c of the length, the data, masked crc32c of the data."""
  length = struct.pack("<Q", len(data))
  return length + _masked_crc(length) + data + _masked_crc(data)


def _png(image: np.ndarray) -> bytes:
  """uint8 [H, W, C] with C in 1..4 -> PNG bytes."""
  mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.shape[-1]]
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if mode == "L" else image, mode).save(buffer, format="PNG")
  return buffer.getvalue()


_file_numbers = itertools.count()


class MetricWriter:
  """Writes scalars, images and hyperparameters to the console and (process 0 only) TensorBoard event files.

  Args:
    logdir: the folder of the event files (the run's workdir).
    write_files: whether this process writes event files; by default only `jax.process_index() == 0` does.
  """

  def __init__(self, logdir: str, *, write_files: bool | None = None):
    self._file = None
    if write_files is None:
      write_files = jax.process_index() == 0
    if not write_files:
      return
    if event_pb2 is None:
      logging.info("TensorBoard event files are off: `tensorboard` is not installed (pip install "
                   "'muraljax[tensorboard]'); metrics go to the console and metrics.jsonl only.")
      return
    os.makedirs(logdir, exist_ok=True)
    # A new file per writer: a resumed run adds one, and TensorBoard reads the folder's files in name order.
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_file_numbers)}.v2"
    self.path = os.path.join(logdir, name)
    self._file = open(self.path, "ab")
    self._write_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def _write_event(self, event: Any) -> None:
    self._file.write(tfrecord(event.SerializeToString()))
    self._file.flush()  # events are few; a crash loses none of them

  def _write_summary(self, step: int, values: list[Any]) -> None:
    if self._file is not None:
      self._write_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs `[step] key=value, ...` and writes each value as a TensorBoard scalar at `step`."""
    text = ", ".join(f"{k}={v:.6g}" if isinstance(v, (float, np.floating)) else f"{k}={v}"
                     for k, v in sorted(scalars.items()))
    logging.info("[%d] %s", step, text)
    if self._file is not None:
      self._write_summary(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()])

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Writes images [N, H, W, C] (or [H, W, C]), uint8 or float in [0, 1], as PNGs; N > 1 tags them `name/i`."""
    images = {k: np.asarray(v) if np.ndim(v) == 4 else np.asarray(v)[None] for k, v in images.items()}
    logging.info("[%d] Got images: %s.", step, {k: v.shape for k, v in images.items()})
    if self._file is None:
      return
    values = []
    for name, batch in images.items():
      batch = batch if batch.dtype == np.uint8 else to_uint8(batch)
      for i, image in enumerate(batch):
        encoded = summary_pb2.Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=image.shape[2],
                                            encoded_image_string=_png(image))
        values.append(summary_pb2.Summary.Value(tag=name if len(batch) == 1 else f"{name}/{i}", image=encoded))
    self._write_summary(step, values)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Logs the hyperparameters and writes them as a two-column table (TensorBoard's Text tab, tag `hparams`)."""
    logging.info("[Hyperparameters] %s", dict(hparams))
    if self._file is None:
      return
    table = "| name | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in sorted(hparams.items()))
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                                    string_val=[table.encode()])
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    self._write_summary(0, [summary_pb2.Summary.Value(tag="hparams", metadata=metadata, tensor=tensor)])

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()
    logging.flush()

  def close(self) -> None:
    self.flush()
    if self._file is not None:
      self._file.close()
      self._file = None


def format_seconds(seconds: float) -> str:
  """123456.7 -> '1d10h17m'."""
  days, rest = divmod(int(seconds), 24 * 3600)
  hours, rest = divmod(rest, 3600)
  return (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + f"{rest // 60}m"


class ReportProgress:
  """Called after every train step; every `every_steps` steps and at the last one it logs steps/s, the progress
  and the ETA, and writes the scalars `steps_per_sec` (since the previous report) and `uptime` (seconds since this
  object was made). The first call only starts the clock."""

  def __init__(self, *, num_train_steps: int, writer: MetricWriter, every_steps: int):
    self.num_train_steps, self.writer, self.every_steps = num_train_steps, writer, every_steps
    self._start = time.monotonic()
    self._previous: tuple[int, float] | None = None

  def __call__(self, step: int) -> bool:
    """Returns whether it reported at `step`."""
    now = time.monotonic()
    if self._previous is None:
      self._previous = (step, now)
      return False
    if step == self._previous[0] or not (step % self.every_steps == 0 or step == self.num_train_steps):
      return False
    steps_per_sec = (step - self._previous[0]) / max(now - self._previous[1], 1e-9)
    eta = (self.num_train_steps - step) / steps_per_sec
    logging.info("%.1f steps/s, %.1f%% (%d/%d), ETA: %s", steps_per_sec, 100 * step / self.num_train_steps, step,
                 self.num_train_steps, format_seconds(eta))
    self.writer.write_scalars(step, {"steps_per_sec": steps_per_sec, "uptime": now - self._start})
    self._previous = (step, now)
    return True
