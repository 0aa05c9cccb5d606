"""Letterbox/stretch geometry, normalization and channel order; boxes map back to source pixels exactly."""

import numpy as np
import pytest

from detrt.data.preprocess import Preprocessor, resize_transform

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.mark.parametrize("src, net, new", [
    ((720, 1280), (640, 640), (360, 640)),   # wide: full width, padded bottom
    ((1080, 720), (640, 640), (640, 427)),   # tall: full height, padded right
    ((480, 640), (512, 768), (512, 683)),
    ((100, 100), (64, 96), (64, 64)),
])
def test_letterbox_geometry(src, net, new):
    t = resize_transform(src, net, "letterbox")
    assert (t.new_h, t.new_w) == new
    assert t.sx == new[1] / src[1] and t.sy == new[0] / src[0]
    assert abs(t.sx - t.sy) < 1.0 / min(src)  # aspect kept up to rounding of the resized size


def test_stretch_geometry():
    t = resize_transform((720, 1280), (640, 640), "stretch")
    assert (t.new_h, t.new_w) == (640, 640) and t.sx == 0.5 and t.sy == 640 / 720


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
def test_boxes_round_trip_exactly(mode):
    rng = np.random.default_rng(0)
    t = resize_transform((720, 1280), (640, 960), mode)
    x0 = rng.uniform(0, 1000, 200)
    y0 = rng.uniform(0, 600, 200)
    src = np.stack([x0, y0, x0 + rng.uniform(1, 280, 200), y0 + rng.uniform(1, 120, 200)], 1).astype(np.float32)
    back = t.to_source(t.to_network(src))
    np.testing.assert_allclose(back, src, rtol=1e-6, atol=1e-4)
    # by hand: network x = source x * (new_w / w)
    net = t.to_network(src)
    np.testing.assert_allclose(net[:, 0], src[:, 0] * t.new_w / 1280, rtol=1e-6)


def test_to_source_clips_to_the_frame():
    t = resize_transform((100, 200), (64, 64), "letterbox")  # image 32x64 at the top-left, rest padding
    out = t.to_source([[-5, -5, 70, 60]])  # reaches into the padding
    np.testing.assert_allclose(out, [[0, 0, 200, 100]])


def test_rectangle_found_where_it_was():
    """A white rectangle in the source lands in the network input where the transform says."""
    src = np.zeros((360, 640, 3), np.uint8)
    src[90:270, 160:480] = 255
    pre = Preprocessor((320, 320), (0, 0, 0), (1, 1, 1), "letterbox", pad_value=0)
    x, (t,) = pre([src])
    ys, xs = np.nonzero(x[0, 0] > 0.5)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(t.to_source(found), [[160, 90, 480, 270]], atol=1.0 / t.sx)
    assert t.new_h == 180 and np.all(x[0, :, 180:, :] == 0)  # padded below the image


def test_normalization_channel_order_and_padding():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 100, 200  # B, G, R
    pre = Preprocessor((64, 64), MEAN, STD, "letterbox")
    x, (t,) = pre([frame])
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    rgb = (200, 100, 10)
    for c in range(3):
        want = (rgb[c] / 255 - MEAN[c]) / STD[c]
        np.testing.assert_allclose(x[0, c, :t.new_h, :], want, rtol=1e-5)
        assert np.all(x[0, c, t.new_h:, :] == 0)  # pad_value None: zeros after normalization (DETR)
    x2, _ = Preprocessor((64, 64), MEAN, STD, "letterbox", pad_value=114)([frame])
    np.testing.assert_allclose(x2[0, 1, 40:, :], (114 / 255 - MEAN[1]) / STD[1], rtol=1e-5)


def test_batch_of_mixed_sizes():
    pre = Preprocessor((64, 96), MEAN, STD)
    frames = [np.full((72, 128, 3), 50, np.uint8), np.full((200, 100, 3), 150, np.uint8)]
    x, ts = pre(frames)
    assert x.shape == (2, 3, 64, 96)
    assert (ts[0].new_h, ts[0].new_w) == (54, 96) and (ts[1].new_h, ts[1].new_w) == (64, 32)
    one, _ = pre(frames[1:])
    np.testing.assert_array_equal(x[1], one[0])


def test_rejects_non_bgr_uint8():
    with pytest.raises(ValueError, match="BGR uint8"):
        Preprocessor((64, 64), MEAN, STD)([np.zeros((10, 10), np.uint8)])
