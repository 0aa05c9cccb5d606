"""A detector's categories: names, an optional hierarchy (parent ids), and the embedding table file (docs/data.md).

    vocab = Vocabulary.load("vocabulary.json")      # {"names": [...], "parents": [...], "ids": [...]}
    vocab.ancestor_mask()                           # bool [C, C]: (i, j) j is i or an ancestor of i
    table = load_embeddings("clip.safetensors", vocab)   # float32 [C, D], rows in vocab order

The index of a name in `names` is the category's index everywhere: model outputs (labels), training
targets, the manifest. `parents[i]` is the index of i's parent, -1 for a root; a flat vocabulary (COCO)
has every parent -1. Internal nodes are categories too (CQ-DINO's tree averaging updates them; an image
may be labelled with any node). `ids` are the dataset's category ids (COCO JSON `category_id`), kept so
results can be written back in the dataset's numbering; 1..C when not given.

A names file is that JSON object, or plain text with one name a line (flat). The embedding table is a
safetensors file with tensor `embeddings` [N, D] and metadata `names` (a JSON list of N names); its rows
are matched to a vocabulary by name, so it may list more names than the vocabulary, in any order.
Numpy only: the runtime reads vocabularies from manifests; safetensors is needed for embedding tables only.
"""

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from detrt.atomic import atomic_open, atomic_path
from detrt.errors import InputError
from detrt.optional import require


def _shown(items, limit=3):
    items = list(items)
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(repr(x) for x in items[:limit]) + more


@dataclass(frozen=True)
class Vocabulary:
    """C categories: names (unique, non-empty), parents (index or -1), dataset ids. Validated when built;
    `source` (the file it came from) only names it in error messages."""

    names: tuple
    parents: tuple = None  # None: flat (every parent -1)
    ids: tuple = None  # None: 1..C
    source: str = field(default="vocabulary", compare=False, repr=False)

    def __post_init__(self):
        names = tuple(self.names) if isinstance(self.names, (list, tuple)) else None
        C = len(names or ())
        for key, default in (("names", names), ("parents", (-1,) * C), ("ids", tuple(range(1, C + 1)))):
            value = default if key == "names" or getattr(self, key) is None else getattr(self, key)
            object.__setattr__(self, key, tuple(value) if isinstance(value, (list, tuple)) else value)
        self._validate()

    def _validate(self):
        where, names = self.source, self.names
        if not isinstance(names, tuple) or not names:
            raise InputError(f"{where}: 'names' must be a non-empty list of strings")
        for key in ("parents", "ids"):
            v = getattr(self, key)
            if not isinstance(v, tuple) or len(v) != len(names):
                raise InputError(f"{where}: '{key}' must be a list of {len(names)} integers (one per name), "
                                 f"got {type(v).__name__ if not isinstance(v, tuple) else len(v)}")
            bad = [i for i, x in enumerate(v) if isinstance(x, bool) or not isinstance(x, int)]
            if bad:
                raise InputError(f"{where}: {key}[{bad[0]}] must be an integer, got {v[bad[0]]!r}")
        bad = [i for i, n in enumerate(names) if not isinstance(n, str) or not n.strip()]
        if bad:
            n = names[bad[0]]
            raise InputError(f"{where}: names[{bad[0]}] is {'empty' if isinstance(n, str) else 'not a string'}: {n!r}")
        first = {}
        for i, n in enumerate(names):
            if n in first:
                raise InputError(f"{where}: duplicate name {n!r} (names[{first[n]}] and names[{i}])")
            first[n] = i
        seen = {}
        for i, x in enumerate(self.ids):
            if x in seen:
                raise InputError(f"{where}: duplicate id {x} (ids[{seen[x]}] and ids[{i}])")
            seen[x] = i
        C = len(names)
        bad = [i for i, p in enumerate(self.parents) if not -1 <= p < C or p == i]
        if bad:
            i, p = bad[0], self.parents[bad[0]]
            why = "is its own parent" if p == i else f"has unknown parent {p} (parents are indices 0..{C - 1} or -1)"
            raise InputError(f"{where}: {names[i]!r} (names[{i}]) {why}")
        if -1 not in self.parents:
            raise InputError(f"{where}: the hierarchy has no root (no parent is -1)")
        self.depths  # walks every chain: raises on a cycle

    def __len__(self):
        return len(self.names)

    @classmethod
    def flat(cls, names, ids=None, source="vocabulary"):
        """A vocabulary without hierarchy."""
        return cls(tuple(names), None, ids, source)

    @property
    def is_flat(self):
        return all(p == -1 for p in self.parents)

    @cached_property
    def index(self):
        """{name: index}."""
        return {n: i for i, n in enumerate(self.names)}

    @cached_property
    def depths(self):
        """int64 [C]: 0 for a root, its parent's + 1 otherwise. InputError naming a cycle."""
        depth = np.full(len(self), -1, np.int64)
        for start in range(len(self)):
            chain, i = [], start
            while i != -1 and depth[i] < 0:
                if i in chain:
                    cycle = chain[chain.index(i):] + [i]
                    raise InputError(f"{self.source}: the hierarchy has a cycle: "
                                     f"{' -> '.join(repr(self.names[j]) for j in cycle)}")
                chain.append(i)
                i = self.parents[i]
            d = -1 if i == -1 else depth[i]
            for j in reversed(chain):
                d += 1
                depth[j] = d
        return depth

    @property
    def depth(self):
        """Levels of the hierarchy: 1 for a flat vocabulary."""
        return int(self.depths.max()) + 1

    def ancestors(self, i):
        """Indices of i's ancestors, parent first, root last."""
        out, p = [], self.parents[i]
        while p != -1:
            out.append(p)
            p = self.parents[p]
        return tuple(out)

    @cached_property
    def children(self):
        """Tuple per category of its direct children's indices."""
        out = [[] for _ in self.names]
        for i, p in enumerate(self.parents):
            if p != -1:
                out[p].append(i)
        return tuple(tuple(c) for c in out)

    def leaves(self):
        """int64 indices of the categories with no children (every category of a flat vocabulary)."""
        has_child = np.zeros(len(self), bool)
        parents = np.asarray(self.parents)
        has_child[parents[parents >= 0]] = True
        return np.flatnonzero(~has_child)

    def ancestor_mask(self, rows=None):
        """bool [C, C]: (i, j) True where j is i or an ancestor of i. rows: only those categories' rows,
        [len(rows), C] (the whole mask is C*C bytes: 10 GB at C = 100k)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, np.int64).reshape(-1)
        parents = np.asarray(self.parents)
        mask = np.zeros((len(rows), len(self)), bool)
        at, up = np.arange(len(rows)), rows
        while len(up):  # one level up per pass, for all rows at once
            mask[at, up] = True
            live = parents[up] >= 0
            at, up = at[live], parents[up[live]]
        return mask

    def to_dict(self):
        d = {"names": list(self.names), "parents": list(self.parents)}
        if self.ids != tuple(range(1, len(self) + 1)):
            d["ids"] = list(self.ids)
        return d

    @classmethod
    def from_dict(cls, d, source="vocabulary"):
        if not isinstance(d, dict) or "names" not in d:
            raise InputError(f"{source}: expected a JSON object with 'names' (and optional 'parents', 'ids')")
        unknown = sorted(set(d) - {"names", "parents", "ids"})
        if unknown:
            raise InputError(f"{source}: unknown key(s) {', '.join(unknown)} (expected names, parents, ids)")
        return cls(d["names"], d.get("parents"), d.get("ids"), str(source))

    @classmethod
    def load(cls, path):
        """Read a names file: JSON {"names", "parents"?, "ids"?}, or text with one name a line. InputError."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text (a names file is JSON or one name a line)") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
        if not text.strip():
            raise InputError(f"{path}: empty file (expected a names file)")
        if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
            return cls.from_dict(d, str(path))
        names, first = [], {}
        for n, line in enumerate(text.rstrip().splitlines(), 1):  # errors name the line, as the file shows it
            name = line.strip()
            if not name or name in first:
                raise InputError(f"{path}:{n}: " + (f"duplicate name {name!r} (line {first[name]})" if name
                                                    else "empty name (one name a line)"))
            first[name] = n
            names.append(name)
        return cls.flat(names, source=str(path))

    def save(self, path):
        """Write the JSON names file atomically."""
        with atomic_open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")


def _read_table(path):
    """(names, float32 [N, D]) of an embedding table file; InputError naming the file and the problem."""
    safetensors = require("safetensors", "reading an embedding table")
    numpy_io = require("safetensors.numpy", "reading an embedding table")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such embedding table file")
    try:
        with safetensors.safe_open(str(path), "np") as f:
            meta, keys = f.metadata() or {}, set(f.keys())
        tensors = numpy_io.load_file(str(path)) if "embeddings" in keys else {}
    except Exception as e:  # SafetensorError, or a header too short / not JSON: not a safetensors file
        raise InputError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    if "embeddings" not in tensors:
        raise InputError(f"{path}: no tensor 'embeddings' (has {_shown(sorted(keys)) or 'none'})")
    try:
        names = json.loads(meta["names"])
    except (KeyError, json.JSONDecodeError):
        raise InputError(f"{path}: metadata 'names' must be a JSON list of the rows' names") from None
    table = tensors["embeddings"]
    if table.ndim != 2 or table.dtype.kind != "f":
        raise InputError(f"{path}: 'embeddings' must be a float [N, D] tensor, got {table.dtype} {list(table.shape)}")
    if not isinstance(names, list) or len(names) != len(table):
        raise InputError(f"{path}: metadata 'names' has {len(names) if isinstance(names, list) else 'no list of'} "
                         f"names for {len(table)} rows of 'embeddings'")
    try:
        Vocabulary.flat(names, source=str(path))  # the same rules as a names file: unique, non-empty strings
    except InputError as e:
        raise InputError(f"{e} (metadata 'names')") from None
    if not np.isfinite(table).all():
        row = int(np.flatnonzero(~np.isfinite(table).all(1))[0])
        raise InputError(f"{path}: row {row} ({names[row]!r}) of 'embeddings' is not finite")
    return names, table.astype(np.float32)


def load_embeddings(path, vocabulary):
    """float32 [C, D]: the table's rows for vocabulary.names, in the vocabulary's order."""
    names, table = _read_table(path)
    row = {n: i for i, n in enumerate(names)}
    missing = [n for n in vocabulary.names if n not in row]
    if missing:
        raise InputError(f"{path}: no embedding for {len(missing)} of the {len(vocabulary)} names of "
                         f"{vocabulary.source}: {_shown(missing)}")
    return table[[row[n] for n in vocabulary.names]]


def save_embeddings(path, names, embeddings):
    """Write an embedding table (rows in `names` order) atomically."""
    numpy_io = require("safetensors.numpy", "writing an embedding table")
    table = np.ascontiguousarray(embeddings, dtype=np.float32)
    names = list(names)
    if table.ndim != 2 or len(table) != len(names):
        raise ValueError(f"embeddings must be [{len(names)}, D], got {list(table.shape)}")
    with atomic_path(path) as tmp:
        numpy_io.save_file({"embeddings": table}, str(tmp), metadata={"names": json.dumps(names)})
