"""Frames to network input: resize (letterbox or stretch), normalize, BGR->RGB, HWC->CHW, batch.

The geometry of each resize is kept as a `Transform` so postprocess maps boxes back to source
pixels exactly: network x = source x * sx + 0 (letterbox puts the image at the top-left and pads
the bottom/right, as DETR batches do), so source x = network x / sx. sx and sy are the resized size
over the source size per axis, so rounding the resized size never skews the mapping.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from detrt.errors import InputError


@dataclass(frozen=True)
class Transform:
    """Source frame (h, w) -> network input (H, W): x_net = x_src * sx, y_net = y_src * sy."""

    src_h: int
    src_w: int
    sx: float
    sy: float
    new_h: int  # resized image size inside the network input
    new_w: int

    def to_source(self, boxes_xyxy):
        """Boxes xyxy in network-input pixels [..., 4] -> source pixels, clipped to the frame."""
        b = np.asarray(boxes_xyxy, dtype=np.float32)
        scale = np.array([self.sx, self.sy, self.sx, self.sy], dtype=np.float32)
        out = b / scale
        np.clip(out[..., 0::2], 0, self.src_w, out=out[..., 0::2])
        np.clip(out[..., 1::2], 0, self.src_h, out=out[..., 1::2])
        return out

    def to_network(self, boxes_xyxy):
        """Inverse of to_source (no clipping): source pixels -> network-input pixels."""
        b = np.asarray(boxes_xyxy, dtype=np.float32)
        return b * np.array([self.sx, self.sy, self.sx, self.sy], dtype=np.float32)


def image_sizes(transforms):
    """The `image_sizes` input of a batch: float32 [B, 2], each image's (h, w) inside the network input."""
    return np.array([[t.new_h, t.new_w] for t in transforms], np.float32).reshape(-1, 2)


def filled_sizes(batch, input_hw):
    """The `image_sizes` input of a batch whose images fill the network input: float32 [batch, 2]."""
    return np.tile(np.float32(input_hw), (batch, 1))


def resize_transform(src_hw, input_hw, mode="letterbox"):
    """The Transform for a source of size src_hw fed to a network of size input_hw."""
    h, w = int(src_hw[0]), int(src_hw[1])
    H, W = int(input_hw[0]), int(input_hw[1])
    if mode == "stretch":
        new_h, new_w = H, W
    elif mode == "letterbox":
        r = min(H / h, W / w)
        new_h, new_w = min(H, max(1, round(h * r))), min(W, max(1, round(w * r)))
    else:
        raise ValueError(f"resize mode must be 'letterbox' or 'stretch', got {mode!r}")
    return Transform(h, w, new_w / w, new_h / h, new_h, new_w)


class Preprocessor:
    """Callable turning BGR uint8 frames into the model's `images` tensor.

    Normalization is folded into one multiply-add per channel: x = pixel * a + b with
    a = 1 / (255 std), b = -mean / std, applied while converting to float32.
    """

    def __init__(self, input_hw, mean, std, mode="letterbox", pad_value=None):
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.mode = mode
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        # Per-channel factors in the network's RGB order.
        self.scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        self.offset = (-mean / std).reshape(3, 1, 1)
        # The normalized value of the padding, per channel.
        if pad_value is None:
            self.pad = np.zeros((3, 1, 1), np.float32)
        else:
            self.pad = (np.float32(pad_value) * self.scale + self.offset).astype(np.float32)

    @classmethod
    def from_manifest(cls, manifest):
        return cls(manifest.input_size, manifest.mean, manifest.std, manifest.resize, manifest.pad_value)

    def __call__(self, frames):
        """A list of BGR uint8 HxWx3 frames -> (float32 [B, 3, H, W], [Transform]); a model's `image_sizes` input
        is image_sizes(transforms)."""
        H, W = self.input_hw
        out = np.empty((len(frames), 3, H, W), np.float32)
        transforms = [self.into(f, out[i]) for i, f in enumerate(frames)]
        return out, transforms

    def into(self, frame, out):
        """Write one frame into `out` [3, H, W] (a view into a batch); return its Transform."""
        if not isinstance(frame, np.ndarray):  # e.g. None from a cv2.imread that failed
            raise InputError(f"expected a BGR uint8 HxWx3 frame (a numpy array), got {type(frame).__name__}")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"expected a BGR uint8 HxWx3 frame, got {frame.dtype} {frame.shape}")
        if frame.size == 0:
            raise InputError(f"expected a BGR uint8 HxWx3 frame, got an empty one {frame.shape}")
        t = resize_transform(frame.shape[:2], self.input_hw, self.mode)
        if (t.new_h, t.new_w) == frame.shape[:2]:
            resized = frame
        else:
            interp = cv2.INTER_AREA if t.new_w < frame.shape[1] else cv2.INTER_LINEAR
            resized = cv2.resize(frame, (t.new_w, t.new_h), interpolation=interp)
        # BGR HWC -> RGB CHW, normalized, written straight into the batch slot.
        for c in range(3):
            ch = out[c, :t.new_h, :t.new_w]
            np.multiply(resized[:, :, 2 - c], self.scale[c, 0, 0], out=ch, casting="unsafe")
            ch += self.offset[c, 0, 0]
        if t.new_h < self.input_hw[0]:
            out[:, t.new_h:, :] = self.pad
        if t.new_w < self.input_hw[1]:
            out[:, :t.new_h, t.new_w:] = self.pad
        return t
