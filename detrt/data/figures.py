"""Drawing for synthetic crowds: person figures, non-person objects, backgrounds (numpy + OpenCV only).

A figure is a list of primitives (`Prim`) in image pixels, so one description paints the colour image
(anti-aliased) and the instance-id map (hard edges, one id per person) and yields its own extent
(the full-body box, occluded parts included). `detrt/data/synthetic.py` lays scenes out and labels them.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions keep 20 px figures smooth
ONE = 1 << SHIFT
SKIN = np.array([[224, 200, 180], [190, 160, 140], [160, 120, 95], [120, 85, 60], [90, 60, 45], [70, 45, 35]])
HAIR = np.array([[20, 20, 25], [40, 30, 25], [70, 50, 35], [30, 60, 110], [150, 150, 155], [100, 80, 60]])


@dataclass
class Prim:
    kind: str  # "line" (pts [2, 2], size = thickness) | "circle" (pts [1, 2], size = radius) | "poly" | "ellipse"
    pts: np.ndarray  # float pixel coordinates
    color: tuple
    size: float = 0.0
    axes: tuple = (0.0, 0.0)  # ellipse half-axes


def extent(prims):
    """xyxy box covering all primitives."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for p in prims:
        pad = {"line": p.size / 2, "circle": p.size, "poly": 0.0}.get(p.kind)
        pad = np.array([pad, pad]) if pad is not None else np.array(p.axes)
        lo = np.minimum(lo, p.pts.min(0) - pad)
        hi = np.maximum(hi, p.pts.max(0) + pad)
    return np.concatenate([lo, hi])


def paint(canvas, prims, offset=0.0, value=None, aa=True):
    """Draw prims on canvas (colour image, or an id map when `value` is given), shifted by `offset` px."""
    line = cv2.LINE_AA if aa and value is None else cv2.LINE_8
    for p in prims:
        color = p.color if value is None else (int(value),)
        pts = np.round((p.pts + offset) * ONE).astype(np.int32)
        if p.kind == "line":
            cv2.line(canvas, tuple(pts[0]), tuple(pts[1]), color, max(1, int(round(p.size))), line, SHIFT)
        elif p.kind == "circle":
            cv2.circle(canvas, tuple(pts[0]), int(round(p.size * ONE)), color, -1, line, SHIFT)
        elif p.kind == "ellipse":
            axes = (int(round(p.axes[0] * ONE)), int(round(p.axes[1] * ONE)))
            cv2.ellipse(canvas, tuple(pts[0]), axes, 0, 0, 360, color, -1, line, SHIFT)
        else:
            cv2.fillConvexPoly(canvas, pts, color, line, SHIFT)


def _bgr(hsv):
    return tuple(int(c) for c in cv2.cvtColor(np.uint8([[hsv]]), cv2.COLOR_HSV2BGR)[0, 0])


def random_color(rng, sat=(40, 230), val=(40, 240)):
    return _bgr([rng.integers(0, 180), rng.integers(*sat), rng.integers(*val)])


def _shade(color, f):
    return tuple(int(min(255, c * f)) for c in color)


def person_style(rng):
    """Appearance of one identity (kept fixed along a video track)."""
    skin = np.clip(SKIN[rng.integers(len(SKIN))] + rng.integers(-12, 13, 3), 0, 255)
    hair = np.clip(HAIR[rng.integers(len(HAIR))] + rng.integers(-10, 11, 3), 0, 255)
    r = rng.random()
    return dict(
        skin=tuple(int(c) for c in skin[::-1]), hair=tuple(int(c) for c in hair[::-1]),
        shirt=random_color(rng), pants=random_color(rng, sat=(20, 160), val=(30, 170)),
        shoes=random_color(rng, sat=(0, 80), val=(15, 90)),
        lower="dress" if r < 0.15 else "coat" if r < 0.3 else "trousers",
        long_hair=rng.random() < 0.3, hat=random_color(rng) if rng.random() < 0.15 else None,
        bag=random_color(rng) if rng.random() < 0.2 else None, stripe=rng.random() < 0.2,
        build=float(rng.uniform(0.85, 1.2)), head=float(rng.uniform(0.9, 1.1)),
    )


def person_pose(rng, walking=None):
    """Pose: facing (0 front/back, +-1 side), gait phase, stride, arm mode, lean."""
    walking = rng.random() < 0.6 if walking is None else walking
    return dict(facing=int(rng.choice([0, 0, 1, -1])), phase=float(rng.uniform(0, 2 * math.pi)),
                stride=float(rng.uniform(0.5, 1.0)) if walking else float(rng.uniform(0, 0.2)),
                arms=int(rng.choice(4, p=[0.8, 0.08, 0.07, 0.05])), lean=float(rng.normal(0, 0.015)))


def _limb(start, angle, length):
    """End point of a limb hanging at `angle` from straight down (radians, + toward +x), image coords."""
    return start + length * np.array([math.sin(angle), math.cos(angle)])


def person_prims(style, pose, xc, yf, h):
    """Primitives of a person standing at foot centre (xc, yf), `h` px tall. Returns (prims, head box)."""
    b, f, ph, st = style["build"], pose["facing"], pose["phase"], pose["stride"]
    side = f != 0
    P = lambda u, v: np.array([xc + u * h, yf - v * h])  # u, v in body heights, v up from the feet
    lt, at = 0.075 * b * h, 0.052 * b * h  # leg and arm thickness
    sw, hw = (0.055 if side else 0.105) * b, (0.05 if side else 0.07) * b  # shoulder, hip half widths
    lean = pose["lean"] + (0.03 * f * st if side else 0)
    hips = [P(-hw + 0.035 * b * (not side) - (0.01 if side else 0), 0.5), P(hw - 0.035 * b * (not side), 0.5)]
    prims, legs = [], []
    for k, hip in enumerate(hips):
        s = math.sin(ph + k * math.pi)
        if side:  # stride along the walking direction, the back leg's knee bends
            thigh = f * 0.42 * st * s
            shin = thigh - f * 0.5 * st * max(0.0, -s)
        else:  # toward or away from the camera: feet apart, the swinging foot lifts
            thigh = (-1) ** (k + 1) * 0.06 * b
            shin = thigh
        knee = _limb(hip, thigh, 0.235 * h)
        foot = _limb(knee, shin, (0.235 - (0 if side else 0.05 * st * max(0.0, s))) * h)
        legs.append((knee, foot, hip))
    torso_top = 0.82
    arm_prims = []
    for k in range(2):
        sgn = -1 if k == 0 else 1
        shoulder = P(sgn * (sw - 0.02 * b) + lean, torso_top - 0.01)
        s = math.sin(ph + (1 - k) * math.pi)
        if side:
            upper, fore = f * 0.5 * st * s, f * (0.5 * st * s + 0.25 * st)
        else:
            upper = sgn * (0.12 + 0.05 * st * abs(s))
            fore = upper + sgn * 0.05
        if pose["arms"] == 1 and k == 1:  # raised arm (waving)
            upper, fore = sgn * 2.6, sgn * 2.9
        elif pose["arms"] == 2 and k == 0:  # hand to the face (phone)
            upper, fore = sgn * 0.25, -sgn * 2.6
        elif pose["arms"] == 3:  # hands on hips
            upper, fore = sgn * 0.65, -sgn * 0.9
        elbow = _limb(shoulder, upper, 0.17 * h)
        hand = _limb(elbow, fore, 0.15 * h)
        color = _shade(style["shirt"], 0.85 if (side and k == 0) else 1.0)
        arm_prims.append([Prim("line", np.stack([shoulder, elbow]), color, at),
                          Prim("line", np.stack([elbow, hand]), style["skin"] if style["lower"] != "coat" else color,
                               at * 0.9),
                          Prim("circle", hand[None], style["skin"], at * 0.55)])
    back_arm, front_arm = (arm_prims[0], arm_prims[1]) if f >= 0 else (arm_prims[1], arm_prims[0])
    if side:
        prims += back_arm
    for k, (knee, foot, hip) in enumerate(legs):
        color = _shade(style["pants"], 0.85 if side and k == 0 else 1.0)
        prims += [Prim("line", np.stack([hip, knee]), color, lt), Prim("line", np.stack([knee, foot]), color, lt * 0.9),
                  Prim("ellipse", (foot + np.array([0.02 * f * h, 0.0]))[None], style["shoes"],
                       axes=(0.045 * h if side else 0.035 * h, 0.02 * h))]
    top_l, top_r = P(-sw + lean, torso_top), P(sw + lean, torso_top)
    if style["lower"] == "coat":
        prims.append(Prim("poly", np.stack([top_l, top_r, P(hw + 0.03 * b, 0.3), P(-hw - 0.03 * b, 0.3)]),
                          style["shirt"]))
    else:
        prims.append(Prim("poly", np.stack([top_l, top_r, P(hw, 0.47), P(-hw, 0.47)]), style["shirt"]))
        if style["lower"] == "dress":
            prims.append(Prim("poly", np.stack([P(-hw, 0.52), P(hw, 0.52), P(hw + 0.07 * b, 0.27),
                                                P(-hw - 0.07 * b, 0.27)]), style["pants"]))
    if style["stripe"]:
        prims.append(Prim("line", np.stack([P(-sw * 0.9 + lean, 0.68), P(sw * 0.9 + lean, 0.68)]),
                          _shade(style["shirt"], 0.5), max(1.0, 0.025 * h)))
    if style["bag"] is not None:
        prims.append(Prim("poly", np.stack([P(sw, 0.62), P(sw + 0.07, 0.62), P(sw + 0.07, 0.48), P(sw, 0.48)]),
                          style["bag"]))
    prims += back_arm if not side else []
    prims += front_arm
    r = 0.062 * style["head"]
    head = P(lean * 1.5, 0.935)
    prims.append(Prim("line", np.stack([P(lean, torso_top - 0.01), head]), style["skin"], 0.045 * h))
    if style["long_hair"]:
        prims.append(Prim("poly", np.stack([head + [-r * h * 1.05, 0], head + [r * h * 1.05, 0],
                                            head + [r * h * 1.1, 0.14 * h], head + [-r * h * 1.1, 0.14 * h]]),
                          style["hair"]))
    prims.append(Prim("circle", head[None], style["skin"], r * h))
    face = 1.0 if f == 0 else 0.55  # side view: the hair covers the back of the head
    prims.append(Prim("ellipse", (head + [-f * 0.3 * r * h, -0.35 * r * h])[None], style["hair"],
                      axes=(r * h * face, r * h * 0.7)))
    if style["hat"] is not None:
        prims += [Prim("poly", np.stack([head + [-r * h * 0.9, -0.5 * r * h], head + [r * h * 0.9, -0.5 * r * h],
                                         head + [r * h * 0.8, -1.4 * r * h], head + [-r * h * 0.8, -1.4 * r * h]]),
                       style["hat"]),
                  Prim("line", np.stack([head + [-r * h * 1.4, -0.5 * r * h], head + [r * h * 1.4, -0.5 * r * h]]),
                       style["hat"], max(1.0, 0.015 * h))]
    rh = r * h
    head_box = np.array([head[0] - rh, head[1] - (1.4 if style["hat"] is not None else 1.05) * rh,
                         head[0] + rh, head[1] + rh])
    return prims, head_box


def object_prims(rng, xc, yf, ref_h):
    """A non-person object standing at (xc, yf), sized relative to a person `ref_h` px tall at that depth."""
    kind = rng.choice(["pole", "tree", "box", "car", "snowman", "cone", "sign", "bench", "blob", "ghost"],
                      p=[0.14, 0.1, 0.14, 0.08, 0.08, 0.08, 0.1, 0.08, 0.12, 0.08])
    P = lambda u, v: np.array([xc + u * ref_h, yf - v * ref_h])
    c, dark = random_color(rng), random_color(rng, sat=(0, 60), val=(30, 120))
    rect = lambda u0, v0, u1, v1, col: Prim("poly", np.stack([P(u0, v0), P(u1, v0), P(u1, v1), P(u0, v1)]), col)
    if kind == "pole":
        t, top = rng.uniform(0.02, 0.05), rng.uniform(1.2, 2.6)
        out = [rect(-t, 0, t, top, dark)]
        if rng.random() < 0.6:  # lamp: a head-like round top
            lamp = random_color(rng, val=(150, 255))
            out.append(Prim("circle", P(0, top)[None], lamp, rng.uniform(0.05, 0.1) * ref_h))
        return out
    if kind == "tree":
        t, top = rng.uniform(0.03, 0.07), rng.uniform(1.0, 2.2)
        green = _bgr([rng.integers(35, 85), rng.integers(80, 230), rng.integers(40, 180)])
        return [rect(-t, 0, t, top, _bgr([15, 120, 90])),
                Prim("ellipse", P(0, top)[None], green,
                     axes=(rng.uniform(0.25, 0.5) * ref_h, rng.uniform(0.3, 0.6) * ref_h))]
    if kind == "box":
        w, h = rng.uniform(0.15, 0.45), rng.uniform(0.15, 0.6)
        return [rect(-w, 0, w, h, c), rect(-w, h - 0.04, w, h, _shade(c, 0.6))]
    if kind == "car":
        w, h = rng.uniform(0.8, 1.3), rng.uniform(0.4, 0.6)
        wheel = 0.11 * ref_h
        return [rect(-w, 0.08, w, h * 0.6, c), rect(-w * 0.6, h * 0.6, w * 0.5, h, c),
                rect(-w * 0.5, h * 0.62, w * 0.4, h * 0.95, _bgr([100, 60, 200])),
                Prim("circle", P(-w * 0.65, 0.1)[None], (20, 20, 20), wheel),
                Prim("circle", P(w * 0.65, 0.1)[None], (20, 20, 20), wheel)]
    if kind == "snowman":
        r = rng.uniform(0.08, 0.16)
        return [Prim("circle", P(0, r * (1 + 2.2 * i) - 0.02 * i)[None], _shade(c, 1 - 0.1 * i),
                     r * (1 - 0.25 * i) * ref_h)
                for i in range(int(rng.integers(2, 4)))]
    if kind == "cone":
        w, h = rng.uniform(0.08, 0.15), rng.uniform(0.2, 0.45)
        return [Prim("poly", np.stack([P(-w, 0), P(w, 0), P(0, h)]), _bgr([10, 230, 240]) if rng.random() < 0.6 else c)]
    if kind == "sign":
        top, s = rng.uniform(0.9, 1.6), rng.uniform(0.1, 0.22)
        return [rect(-0.015, 0, 0.015, top, dark),
                rect(-s, top, s, top + 2 * s * rng.uniform(0.6, 1.2), c) if rng.random() < 0.5
                else Prim("circle", P(0, top + s)[None], c, s * ref_h)]
    if kind == "bench":
        w, h = rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.3)
        return [rect(-w, h - 0.05, w, h, c), rect(-w, 0, -w + 0.04, h, dark), rect(w - 0.04, 0, w, h, dark)]
    if kind == "ghost":  # head-on-a-body without limbs: a hard negative
        w, h = rng.uniform(0.12, 0.2), rng.uniform(0.6, 0.9)
        return [rect(-w, 0, w, h, c), Prim("circle", P(0, h + 0.07)[None], random_color(rng), 0.07 * ref_h)]
    return [Prim("ellipse", P(rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.6))[None], c,
                 axes=(rng.uniform(0.08, 0.4) * ref_h, rng.uniform(0.08, 0.3) * ref_h))]


_NOISE = None


def _noise_tile():
    global _NOISE
    if _NOISE is None:  # one fixed tile per process; images take random crops, so results stay seeded
        _NOISE = np.random.default_rng(12345).normal(0, 1, (1024, 1024, 3)).astype(np.float32)
    return _NOISE


def background(rng, width, height, horizon):
    """Cluttered street-like background: sky/wall and ground gradients, buildings with windows, road lines,
    low-frequency texture, small clutter shapes and text. Returns uint8 [H, W, 3]."""
    top, mid, ground, near = (np.array(random_color(rng, sat=(0, 120), val=(60, 250)), np.float32) for _ in range(4))
    ys = np.arange(height, dtype=np.float32)[:, None]
    hz = float(np.clip(horizon, 1, height - 1))
    a = np.clip(ys / hz, 0, 1)
    g = np.clip((ys - hz) / max(1.0, height - hz), 0, 1)
    col = np.where(ys < hz, top * (1 - a) + mid * a, ground * (1 - g) + near * g)
    img = np.broadcast_to(col[:, None, :], (height, width, 3)).copy()
    low = rng.normal(0, rng.uniform(5, 25), (height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
    img += cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    x = -rng.uniform(0, 40)
    while x < width and hz > 20:  # buildings along the horizon
        bw, bh = rng.uniform(40, 160), rng.uniform(0.3, 1.2) * hz
        c = random_color(rng, sat=(0, 100), val=(50, 220))
        y0 = int(hz - bh)
        cv2.rectangle(img, (int(x), y0), (int(x + bw), int(hz) + 2), c, -1)
        wc, ww, wh = _shade(c, rng.uniform(0.4, 1.6)), rng.uniform(4, 12), rng.uniform(5, 14)
        for wy in np.arange(y0 + 6, hz - wh, wh * 2):
            for wx in np.arange(x + 5, x + bw - ww, ww * 2):
                img[int(wy):int(wy + wh), int(max(wx, 0)):int(max(wx + ww, 0))] = wc
        x += bw + rng.uniform(-10, 30)
    vx = rng.uniform(0, width)
    for _ in range(int(rng.integers(0, 6))):  # road lines toward a vanishing point
        cv2.line(img, (int(vx), int(hz)), (int(rng.uniform(-width, 2 * width)), height),
                 random_color(rng, val=(80, 255)), int(rng.integers(1, 5)), cv2.LINE_AA)
    for _ in range(int(rng.integers(5, 25))):  # clutter
        cx, cy, s = int(rng.uniform(0, width)), int(rng.uniform(0, height)), int(rng.uniform(2, 18))
        k = rng.integers(4)
        c = random_color(rng)
        if k == 0:
            cv2.circle(img, (cx, cy), s, c, -1, cv2.LINE_AA)
        elif k == 1:
            cv2.rectangle(img, (cx, cy), (cx + s, cy + int(rng.uniform(2, 18))), c, -1)
        elif k == 2:
            cv2.line(img, (cx, cy), (cx + int(rng.normal(0, 30)), cy + int(rng.normal(0, 30))), c, 1, cv2.LINE_AA)
        else:
            text = "".join(chr(int(t)) for t in rng.integers(65, 91, int(rng.integers(2, 7))))
            cv2.putText(img, text, (cx, cy), cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.3, 0.9), c, 1, cv2.LINE_AA)
    return img


def finish(rng, img):
    """Camera effects in place of a real sensor: colour cast, contrast, sensor noise, sometimes blur."""
    tile = _noise_tile()
    h, w = img.shape[:2]
    y0, x0 = rng.integers(0, tile.shape[0] - h + 1), rng.integers(0, tile.shape[1] - w + 1)
    out = img.astype(np.float32) * rng.uniform(0.75, 1.2) + rng.normal(0, 12, 3).astype(np.float32)
    out += tile[y0:y0 + h, x0:x0 + w] * rng.uniform(1, 7)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out
