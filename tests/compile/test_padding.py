"""Padding masks end to end: an image letterboxed into a larger input gives the detections of the same image run
unpadded, in PyTorch, in the exported portable graph on ONNX Runtime, in the plugin form (ONNX Runtime with the
detrt:: CPU kernels) and through the runtime's Detector.

The model is the bundled one (trained: real detections, DCG keeping some queries and dropping others). The image
is 200x328 (h x w): non-square, no multiple of 32 (so every level's image ends inside a feature pixel), placed in
the 256x384 input with padding on both axes. Measured here (the tests print them): the largest score difference
of the top-100 detections 1.6e-6 in PyTorch and 2.3e-6 in both ONNX forms, the largest box difference 1.1e-4
and 9.2e-5 input pixels; raw logits of every decoder layer 7e-6. The bounds below leave ~10x room or more.
"""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from detrt.compile.export import ExportWrapper, export_model_to, finite_max_abs_diff

H, W = 200, 328
SCORE_TOL, BOX_TOL = 1e-4, 2e-3  # box: input pixels


@pytest.fixture(scope="module")
def bundled():
    from detrt.assets import bundled_model_path
    from detrt.models.checkpoint import model_from_checkpoint

    model, cfg = model_from_checkpoint(bundled_model_path())
    return model.eval(), cfg


@pytest.fixture(scope="module")
def image(bundled):
    """(unpadded [1, 3, H, W], the same in the config's input [1, 3, 256, 384], image_sizes [1, 2])."""
    import cv2

    from detrt.data.preprocess import Preprocessor
    from detrt.data.synthetic import synth_image

    cfg = bundled[1]
    frame = cv2.resize(synth_image(seed=2, index=0)[0], (W, H), interpolation=cv2.INTER_AREA)
    x, _ = Preprocessor((H, W), cfg.mean, cfg.std)([frame])
    canvas = np.zeros((1, 3, *cfg.input_size), np.float32)
    canvas[..., :H, :W] = x
    return x, canvas, np.float32([[H, W]])


@pytest.fixture(scope="module")
def unpadded(bundled, image):
    """Detections (scores, labels, boxes in pixels) of the model on the unpadded image: the reference."""
    wrapper = ExportWrapper(bundled[0], postprocess=True, topk=bundled[1].num_select).eval()
    with torch.no_grad():
        return [t.numpy() for t in wrapper(torch.from_numpy(image[0]), torch.from_numpy(image[2]))]


def assert_same_detections(got, want):
    scores, labels, boxes = got
    assert (want[0] > 0.3).sum() >= 5  # a trained model: real detections to compare
    d_scores, d_boxes = finite_max_abs_diff(scores, want[0]), finite_max_abs_diff(boxes, want[2])
    print(f"padded vs unpadded: scores max abs diff {d_scores:.1e}, boxes {d_boxes:.1e} px")
    assert d_scores <= SCORE_TOL and d_boxes <= BOX_TOL
    assert (labels == want[1]).all()


def test_pytorch_padding_changes_nothing_and_would_without_masks(bundled, image, unpadded):
    model = bundled[0]
    wrapper = ExportWrapper(model, postprocess=True, topk=bundled[1].num_select).eval()
    with torch.no_grad():
        padded = [t.numpy() for t in wrapper(torch.from_numpy(image[1]), torch.from_numpy(image[2]))]
        masked, plain = model(torch.from_numpy(image[1]), torch.from_numpy(image[2])), model(torch.from_numpy(image[0]))
        blind = model(torch.from_numpy(image[1]))  # the same input, the padding unmasked
    assert_same_detections(padded, unpadded)
    # every decoder layer and the encoder proposals of the image's tokens, not only the top detections
    for a, b in zip([*masked["aux_outputs"], masked], [*plain["aux_outputs"], plain]):
        assert finite_max_abs_diff(a["pred_logits"], b["pred_logits"]) <= SCORE_TOL
        assert finite_max_abs_diff(a["pred_boxes"], b["pred_boxes"]) <= 1e-5
    # without the mask the padding moves the scores: the test above is not vacuous
    assert np.abs(blind["pred_logits"].sigmoid().numpy() - plain["pred_logits"].sigmoid().numpy()).max() > 0.01


@pytest.fixture(scope="module")
def exported(bundled, tmp_path_factory):
    """{form: path} of the bundled model exported at its 256x384 input, with manifests."""
    model, cfg = bundled
    paths = {form: tmp_path_factory.mktemp("padding") / f"{form}.onnx" for form in ("portable", "plugin")}
    for form, path in paths.items():
        export_model_to(model, cfg, path, form=form, max_batch=2, log=None)
    return paths


@pytest.mark.parametrize("form", ["portable", "plugin"])
def test_exported_graph_with_image_sizes_gives_the_unpadded_detections(exported, image, unpadded, form):
    if form == "plugin":
        session = pytest.importorskip("detrt.ops.ort", reason="the plugin form needs the CPU kernels").InferenceSession
    else:
        session = ort.InferenceSession
    sess = session(str(exported[form]))
    assert [i.name for i in sess.get_inputs()] == ["images", "image_sizes"]
    assert_same_detections(sess.run(None, {"images": image[1], "image_sizes": image[2]}), unpadded)


def test_detector_feeds_image_sizes_from_its_letterbox(bundled, exported):
    """The runtime letterboxes a 500x640 frame into 256x384 (image 256x328, 56 columns of padding) and feeds
    (256, 328): its detections are the model's on the unpadded 256x328 image, mapped back to the frame."""
    import cv2

    from detrt.data.preprocess import Preprocessor, resize_transform
    from detrt.data.synthetic import synth_image
    from detrt.runtime.detector import Detector

    model, cfg = bundled
    frame = cv2.resize(synth_image(seed=2, index=1)[0], (640, 500))
    t = resize_transform(frame.shape[:2], cfg.input_size)
    assert (t.new_h, t.new_w) == (256, 328)
    x, _ = Preprocessor((256, 328), cfg.mean, cfg.std)([frame])
    wrapper = ExportWrapper(model, postprocess=True, topk=cfg.num_select).eval()
    with torch.no_grad():
        scores, labels, boxes = (v[0].numpy() for v in wrapper(torch.from_numpy(x), torch.tensor([[256.0, 328.0]])))
    keep = scores > 0.3
    with Detector(exported["portable"], threshold=0.3) as det:
        got = det.detect(frame)
    assert len(got) == keep.sum() >= 5
    np.testing.assert_allclose(got.scores, scores[keep], atol=SCORE_TOL)
    np.testing.assert_allclose(got.boxes, t.to_source(boxes[keep]), atol=BOX_TOL / t.sx)
