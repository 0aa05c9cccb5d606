// detrt plugins/cpu/dcg_cpu.cpp: exact sub-quadratic `dcg_neighbors` on the CPU.
//
// Why it is exact: for iou_threshold t > 0 a neighbour j of i needs IoU(i, j) >= t > 0, hence
//   (1) similar sizes: IoU <= min(w_i, w_j) / max(w_i, w_j), so t * w_i <= w_j <= w_i / t (same for h and
//       for the area, as IoU <= min(area) / max(area));
//   (2) close centres: inter >= t * union >= t * max(area) and inter_h <= min(h) give an x-overlap of at
//       least t * max(w_i, w_j), so |cx_i - cx_j| <= (w_i + w_j) / 2 - t * max(w_i, w_j) (same in y).
// Candidates (score > low_score, a box that can have IoU > 0) are grouped by size class (power-of-two
// width class x height class, sizes in [2^c, 2^(c+1))); each class is a uniform grid of cells 2^(c+1)
// wide/high, stored as one array sorted by (class, cell row, cell column), with a dense table of cell
// starts where the class has few enough cells (else one binary search per cell row).
// A query visits only the classes allowed by (1) and, in each, the cells within reach of (2): in one cell
// row they are one contiguous run of the arrays (one array per box field), filtered in vectorizable chunks
// by a branch- and division-free bound (a crowd query meets ~100 candidates and ~5 neighbours; per-candidate
// branches and divisions were most of the time). Bounds carry a relative slack far above float rounding, and every
// candidate found is decided by the same IoU and predicate as the dense reference
// (plugins/common/dcg_core.h), so the result is the reference's set; the slack only costs time.
// t <= 0 admits non-overlapping pairs (IoU 0 >= t), so it scans all pairs, still in O(N*k) memory.
// This file must be compiled with -ffp-contract=off (see dcg_core.h).
#include "dcg_cpu.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "check.h"
#include "dcg_core.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace detrt {
namespace cpu {

namespace {

constexpr double kSlack = 1e-4;  // relative; float rounding in IoU is below 1e-6
constexpr int kCellsPerClassSide = 1;
constexpr int kChunk = 64;  // candidates filtered per vectorized pass  // cell side = class bound / this (finer cells: fewer candidates, more cells)

inline double class_bound(int size_class) { return std::ldexp(1.0, size_class + 1); }  // > every member's size
inline double inv_cell_side(int size_class) { return kCellsPerClassSide / class_bound(size_class); }

struct Member {
  int wclass, hclass;  // ilogb of width and height
  uint64_t key;        // (cell row, cell column) in the class's grid
  float score;
  int index;
};

// Sorted candidates of one batch element: classes by (wclass, hclass), inside a class by cell (row-major),
// so the cells of one row within reach of a query are one contiguous run.
struct Grid {
  std::vector<int> wclass, hclass, class_begin, class_end;  // per occupied size class
  std::vector<double> wmax, hmax, inv_w, inv_h;             // class bounds and inverse cell sides
  // Per class, where its cells are few enough (<= 4 per member): a dense row-major table of cell starts,
  // so a cell row is found without a binary search. table < 0: no table (binary search on key).
  std::vector<int64_t> row_min, col_min, rows, cols, table;
  std::vector<int> cell_start;
  std::vector<uint64_t> key;
  std::vector<int> index;
  std::vector<float> x0, y0, x1, y1, area, score;  // the members' boxes, one array per field (vector loads)
};

// Cell index of a coordinate; inv_cell = 1 / cell side, exact since the side is a power of two.
inline int64_t cell_of(double coordinate, double inv_cell) {
  double c = coordinate * inv_cell;
  const double lim = 2147483000.0;  // clamping keeps cells monotonic in the coordinate
  c = c < -lim ? -lim : (c > lim ? lim : c);
  const int64_t i = static_cast<int64_t>(c);  // truncation; floor below (std::floor is a libm call before SSE4.1)
  return i - (static_cast<double>(i) > c ? 1 : 0);
}

inline uint64_t cell_key(int64_t row, int64_t col) {
  return (static_cast<uint64_t>(row + 2147483648LL) << 32) | static_cast<uint64_t>(col + 2147483648LL);
}

void build_grid(const std::vector<dcg::Box>& boxes, const float* scores, int n, float low_score, Grid& g) {
  std::vector<Member> members;
  members.reserve(n);
  for (int j = 0; j < n; ++j) {
    if (!(scores[j] > low_score) || !dcg::can_qualify(boxes[j])) continue;
    const dcg::Box& b = boxes[j];
    const double w = static_cast<double>(b.x1) - b.x0, h = static_cast<double>(b.y1) - b.y0;
    const int wc = std::ilogb(w), hc = std::ilogb(h);
    const double cx = 0.5 * (static_cast<double>(b.x0) + b.x1), cy = 0.5 * (static_cast<double>(b.y0) + b.y1);
    members.push_back({wc, hc, cell_key(cell_of(cy, inv_cell_side(hc)), cell_of(cx, inv_cell_side(wc))), scores[j], j});
  }
  std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) {
    if (a.wclass != b.wclass) return a.wclass < b.wclass;
    if (a.hclass != b.hclass) return a.hclass < b.hclass;
    if (a.key != b.key) return a.key < b.key;
    return a.index < b.index;
  });
  const size_t m = members.size();
  g.key.resize(m);
  g.index.resize(m);
  for (auto* v : {&g.x0, &g.y0, &g.x1, &g.y1, &g.area}) v->resize(m);
  g.score.resize(m);
  g.wclass.clear();
  g.hclass.clear();
  g.class_begin.clear();
  g.class_end.clear();
  for (size_t p = 0; p < m; ++p) {
    g.key[p] = members[p].key;
    g.index[p] = members[p].index;
    const dcg::Box& b = boxes[members[p].index];
    g.x0[p] = b.x0, g.y0[p] = b.y0, g.x1[p] = b.x1, g.y1[p] = b.y1, g.area[p] = b.area;
    g.score[p] = members[p].score;
    if (p == 0 || members[p].wclass != members[p - 1].wclass || members[p].hclass != members[p - 1].hclass) {
      if (p) g.class_end.push_back(static_cast<int>(p));
      g.wclass.push_back(members[p].wclass);
      g.hclass.push_back(members[p].hclass);
      g.class_begin.push_back(static_cast<int>(p));
    }
  }
  if (m) g.class_end.push_back(static_cast<int>(m));
  const size_t classes = g.class_begin.size();
  g.wmax.resize(classes), g.hmax.resize(classes), g.inv_w.resize(classes), g.inv_h.resize(classes);
  for (size_t c = 0; c < classes; ++c) {
    g.wmax[c] = class_bound(g.wclass[c]), g.hmax[c] = class_bound(g.hclass[c]);
    g.inv_w[c] = inv_cell_side(g.wclass[c]), g.inv_h[c] = inv_cell_side(g.hclass[c]);
  }
  g.row_min.assign(classes, 0);
  g.col_min.assign(classes, 0);
  g.rows.assign(classes, 0);
  g.cols.assign(classes, 0);
  g.table.assign(classes, -1);
  g.cell_start.clear();
  for (size_t c = 0; c < classes; ++c) {
    const int begin = g.class_begin[c], end = g.class_end[c];
    int64_t r0 = INT64_MAX, r1 = INT64_MIN, c0 = INT64_MAX, c1 = INT64_MIN;
    for (int p = begin; p < end; ++p) {
      const int64_t row = static_cast<int64_t>(g.key[p] >> 32), col = static_cast<int64_t>(g.key[p] & 0xFFFFFFFFu);
      r0 = std::min(r0, row), r1 = std::max(r1, row), c0 = std::min(c0, col), c1 = std::max(c1, col);
    }
    const int64_t rows = r1 - r0 + 1, cols = c1 - c0 + 1;
    if (rows * cols > 4 * static_cast<int64_t>(end - begin) + 256) continue;
    g.row_min[c] = r0 - 2147483648LL, g.col_min[c] = c0 - 2147483648LL, g.rows[c] = rows, g.cols[c] = cols;
    g.table[c] = static_cast<int64_t>(g.cell_start.size());
    // members are sorted by (row, col): the cell index is non-decreasing along them
    int p = begin;
    for (int64_t cell = 0; cell <= rows * cols; ++cell) {
      while (p < end && ((static_cast<int64_t>(g.key[p] >> 32) - r0) * cols +
                         (static_cast<int64_t>(g.key[p] & 0xFFFFFFFFu) - c0)) < cell) {
        ++p;
      }
      g.cell_start.push_back(p);
    }
  }
}

// Reach of (1) in one axis: |c_i - c_j| <= (s_i + s_j) / 2 - t * max(s_i, s_j) (IoU >= t needs an overlap
// of at least t * max(s_i, s_j) in each axis), for s_j up to s_max; with slack.
inline double reach(double s_i, double s_max, double td, double centre) {
  const double r = 0.5 * (s_i + s_max) - td * s_i;
  return (r > 0 ? r : 0.0) * (1.0 + kSlack) + kSlack * (s_i + std::fabs(centre));
}

// Neighbours of box i from the grid (threshold t > 0).
void query_grid(const Grid& g, const dcg::Box& bi, float si, float t, float low_score, int k, float* keys, int* idx,
                int& count) {
  count = 0;
  if (!dcg::can_qualify(bi)) return;
  const double wi = static_cast<double>(bi.x1) - bi.x0, hi = static_cast<double>(bi.y1) - bi.y0;
  const double td = static_cast<double>(t) * (1.0 - kSlack);
  const double cx = 0.5 * (static_cast<double>(bi.x0) + bi.x1), cy = 0.5 * (static_cast<double>(bi.y0) + bi.y1);
  const double area_lo = wi * hi * td, area_hi = wi * hi / td;
  // fl(inter / uni) >= t gives inter >= t * (1 - 2^-24) * uni, and fl(t_lo * uni) stays below that
  const float t_lo = t * (1.0f - 1e-5f);
  for (size_t c = 0; c < g.wclass.size(); ++c) {
    // (1): t * w_i <= w_j <= w_i / t, members' widths lie in [cell_w / 2, cell_w); same for heights
    const double wmax = g.wmax[c], hmax = g.hmax[c], inv_w = g.inv_w[c], inv_h = g.inv_h[c];
    if (!(wmax > wi * td && 0.5 * wmax * td <= wi && hmax > hi * td && 0.5 * hmax * td <= hi)) continue;
    // (1) for areas too: IoU <= min(area) / max(area); members' areas lie in [wmax*hmax/4, wmax*hmax)
    if (!(wmax * hmax > area_lo && 0.25 * wmax * hmax <= area_hi)) continue;
    // (2): the cells within reach of the centre
    const double rx = reach(wi, std::min(wmax, wi / td), td, cx);
    const double ry = reach(hi, std::min(hmax, hi / td), td, cy);
    const int64_t col_lo = cell_of(cx - rx, inv_w), col_hi = cell_of(cx + rx, inv_w);
    const int64_t row_lo = cell_of(cy - ry, inv_h), row_hi = cell_of(cy + ry, inv_h);
    const int begin = g.class_begin[c], end = g.class_end[c];
    auto scan = [&](int p, int p_end) {  // every candidate of the run, in chunks
      while (p < p_end) {
        const int n = std::min(p_end - p, kChunk);
        // Pass 1, vectorized: inter / uni >= t implies inter >= t_lo * uni (see t_lo), so a candidate
        // failing this cannot be a neighbour; no branch and no division per candidate.
        uint8_t maybe[kChunk];
        for (int q = 0; q < n; ++q) {
          const int j = p + q;
          float inter, uni;
          dcg::inter_union(bi, dcg::Box{g.x0[j], g.y0[j], g.x1[j], g.y1[j], g.area[j]}, inter, uni);
          maybe[q] = (si < g.score[j]) & (inter >= t_lo * uni);
        }
        // Pass 2, for the few left: the exact IoU and predicate of the dense reference
        for (int q = 0; q < n; ++q) {
          if (!maybe[q]) continue;
          const int j = p + q;
          const float v = dcg::iou(bi, dcg::Box{g.x0[j], g.y0[j], g.x1[j], g.y1[j], g.area[j]});
          if (dcg::is_neighbor(si, g.score[j], v, t, low_score)) dcg::topk_insert(keys, idx, count, k, v, g.index[j]);
        }
        p += n;
      }
    };
    if (g.table[c] >= 0) {
      const int64_t r_lo = std::max(row_lo, g.row_min[c]), r_hi = std::min(row_hi, g.row_min[c] + g.rows[c] - 1);
      const int64_t c_lo = std::max(col_lo, g.col_min[c]), c_hi = std::min(col_hi, g.col_min[c] + g.cols[c] - 1);
      if (r_lo > r_hi || c_lo > c_hi) continue;
      const int* starts = g.cell_start.data() + g.table[c];
      for (int64_t row = r_lo; row <= r_hi; ++row) {
        const int64_t base = (row - g.row_min[c]) * g.cols[c] - g.col_min[c];
        scan(starts[base + c_lo], starts[base + c_hi + 1]);
      }
      continue;
    }
    const uint64_t* first = g.key.data() + begin;
    const uint64_t* last = g.key.data() + end;
    if (row_hi - row_lo + 1 > end - begin) {  // reach wider than the class: read it all
      scan(begin, end);
      continue;
    }
    for (int64_t row = row_lo; row <= row_hi; ++row) {
      const uint64_t* run_begin = std::lower_bound(first, last, cell_key(row, col_lo));
      const uint64_t* run_end = std::upper_bound(run_begin, last, cell_key(row, col_hi));
      scan(static_cast<int>(run_begin - g.key.data()), static_cast<int>(run_end - g.key.data()));
    }
  }
}

int resolve_threads(int num_threads, int64_t work) {
#if defined(_OPENMP)
  if (work < 4096) return 1;
  return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)num_threads;
  (void)work;
  return 1;
#endif
}

}  // namespace

template <typename I>
void dcg_neighbors(const float* boxes, const float* scores, int B, int N, int k, float iou_threshold,
                   float low_score, I* indices, uint8_t* valid, int num_threads) {
  DETRT_CHECK(B >= 0 && N >= 0 && k >= 0, "dcg_neighbors: negative size");
  const float t = iou_threshold;
  const bool all_pairs = t <= 0.0f;
  const bool none = std::isnan(t);  // IoU >= NaN never holds
  std::vector<dcg::Box> box(N);
  Grid grid;
  const int threads = resolve_threads(num_threads, static_cast<int64_t>(N) * (all_pairs ? N : 64));
  (void)threads;  // without OpenMP
  for (int b = 0; b < B; ++b) {
    const float* bx = boxes + static_cast<int64_t>(b) * N * 4;
    const float* sc = scores + static_cast<int64_t>(b) * N;
    I* out_index = indices + static_cast<int64_t>(b) * N * k;
    uint8_t* out_valid = valid + static_cast<int64_t>(b) * N * k;
    for (int i = 0; i < N; ++i) box[i] = dcg::box_from_cxcywh(bx[4 * i], bx[4 * i + 1], bx[4 * i + 2], bx[4 * i + 3]);
    if (!none && !all_pairs) build_grid(box, sc, N, low_score, grid);
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
      std::vector<float> keys(k > 0 ? k : 1);
      std::vector<int> idx(k > 0 ? k : 1);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 32)
#endif
      for (int i = 0; i < N; ++i) {
        int count = 0;
        if (none) {
          // no neighbour
        } else if (all_pairs) {
          const float si = sc[i];
          for (int j = 0; j < N; ++j) {
            const float v = dcg::iou(box[i], box[j]);
            if (dcg::is_neighbor(si, sc[j], v, t, low_score)) dcg::topk_insert(keys.data(), idx.data(), count, k, v, j);
          }
        } else {
          query_grid(grid, box[i], sc[i], t, low_score, k, keys.data(), idx.data(), count);
        }
        dcg::topk_write(idx.data(), count, k, i, out_index + static_cast<int64_t>(i) * k,
                        out_valid + static_cast<int64_t>(i) * k);
      }
    }
  }
}

template void dcg_neighbors<int32_t>(const float*, const float*, int, int, int, float, float, int32_t*, uint8_t*,
                                     int);
template void dcg_neighbors<int64_t>(const float*, const float*, int, int, int, float, float, int64_t*, uint8_t*,
                                     int);

}  // namespace cpu
}  // namespace detrt
