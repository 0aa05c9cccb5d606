// detrt plugins/cpu/dcg_cpu.cpp: exact sub-quadratic `dcg_neighbors` on the CPU.
//
// Why it is exact: for iou_threshold t > 0 a neighbour j of i needs IoU(i, j) >= t > 0, hence
//   (1) overlapping boxes: |cx_i - cx_j| < (w_i + w_j) / 2 and the same in y, and
//   (2) similar sizes: IoU <= min(w_i, w_j) / max(w_i, w_j) (and the same for h), so
//       t * s_i <= s_j <= s_i / t with s = max(w, h).
// Candidates (score > low_score, a box that can have IoU > 0) go into one uniform grid per power-of-two
// size class (cell side 2^(level+1) >= any member's w and h), stored as one array sorted by
// (level, cell row, cell column). A query visits only the size classes allowed by (2) and, in each, the
// cells within reach of (1): a binary search per cell row. Bounds carry a relative slack far above
// float rounding, and every candidate found is decided by the same IoU and predicate as the dense
// reference (plugins/common/dcg_core.h), so the result is the reference's set; the slack only costs time.
// t <= 0 admits non-overlapping pairs (IoU 0 >= t), so it scans all pairs, still in O(N*k) memory.
// This file must be compiled with -ffp-contract=off (see dcg_core.h).
#include "dcg_cpu.h"

#include <algorithm>
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

struct Member {
  int level;
  uint64_t key;
  int index;
};

// Sorted candidates of one batch element.
struct Grid {
  std::vector<int> level_value, level_begin, level_end;  // per occupied size class
  std::vector<uint64_t> key;                             // (row, column) of each member, sorted within a level
  std::vector<int> index;                                // member -> box index
  std::vector<dcg::Box> box;
  std::vector<float> score;
};

inline int64_t cell_of(double coordinate, double cell) {
  const double c = std::floor(coordinate / cell);
  const double lim = 2147483000.0;  // clamping keeps cells monotonic in the coordinate
  return static_cast<int64_t>(c < -lim ? -lim : (c > lim ? lim : c));
}

inline uint64_t cell_key(int64_t row, int64_t col) {
  return (static_cast<uint64_t>(row + 2147483648LL) << 32) | static_cast<uint64_t>(col + 2147483648LL);
}

inline double box_size(const dcg::Box& b) {
  return std::max(static_cast<double>(b.x1) - b.x0, static_cast<double>(b.y1) - b.y0);
}

void build_grid(const std::vector<dcg::Box>& boxes, const float* scores, int n, float low_score, Grid& g) {
  std::vector<Member> members;
  members.reserve(n);
  for (int j = 0; j < n; ++j) {
    if (!(scores[j] > low_score) || !dcg::can_qualify(boxes[j])) continue;
    const dcg::Box& b = boxes[j];
    const int level = std::ilogb(box_size(b));
    const double cell = std::ldexp(1.0, level + 1);
    const double cx = 0.5 * (static_cast<double>(b.x0) + b.x1), cy = 0.5 * (static_cast<double>(b.y0) + b.y1);
    members.push_back({level, cell_key(cell_of(cy, cell), cell_of(cx, cell)), j});
  }
  std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) {
    return a.level != b.level ? a.level < b.level : (a.key != b.key ? a.key < b.key : a.index < b.index);
  });
  const size_t m = members.size();
  g.key.resize(m);
  g.index.resize(m);
  g.box.resize(m);
  g.score.resize(m);
  g.level_value.clear();
  g.level_begin.clear();
  g.level_end.clear();
  for (size_t p = 0; p < m; ++p) {
    g.key[p] = members[p].key;
    g.index[p] = members[p].index;
    g.box[p] = boxes[members[p].index];
    g.score[p] = scores[members[p].index];
    if (p == 0 || members[p].level != members[p - 1].level) {
      if (p) g.level_end.push_back(static_cast<int>(p));
      g.level_value.push_back(members[p].level);
      g.level_begin.push_back(static_cast<int>(p));
    }
  }
  if (m) g.level_end.push_back(static_cast<int>(m));
}

// Neighbours of box i from the grid (threshold t > 0).
void query_grid(const Grid& g, const dcg::Box& bi, float si, float t, float low_score, int i, int k, float* keys,
                int* idx, int& count) {
  count = 0;
  if (!dcg::can_qualify(bi)) return;
  const double wi = static_cast<double>(bi.x1) - bi.x0, hi = static_cast<double>(bi.y1) - bi.y0;
  const double size_i = std::max(wi, hi);
  const double td = static_cast<double>(t) * (1.0 - kSlack);
  const double size_lo = size_i * td, size_hi = size_i / td;
  const double cx = 0.5 * (static_cast<double>(bi.x0) + bi.x1), cy = 0.5 * (static_cast<double>(bi.y0) + bi.y1);
  for (size_t L = 0; L < g.level_value.size(); ++L) {
    const int level = g.level_value[L];
    const double cell = std::ldexp(1.0, level + 1);  // members' sizes lie in [cell / 2, cell)
    if (!(cell > size_lo && 0.5 * cell <= size_hi)) continue;
    const double wj_max = std::min(cell, wi / td), hj_max = std::min(cell, hi / td);
    const double rx = 0.5 * (wi + wj_max) * (1.0 + kSlack) + kSlack * std::fabs(cx);
    const double ry = 0.5 * (hi + hj_max) * (1.0 + kSlack) + kSlack * std::fabs(cy);
    const int64_t col_lo = cell_of(cx - rx, cell), col_hi = cell_of(cx + rx, cell);
    const int64_t row_lo = cell_of(cy - ry, cell), row_hi = cell_of(cy + ry, cell);
    const int begin = g.level_begin[L], end = g.level_end[L];
    auto consider = [&](int p) {
      if (!(g.score[p] > si)) return;
      const dcg::Box& bj = g.box[p];
      if (!dcg::boxes_overlap(bi, bj)) return;
      const float v = dcg::iou(bi, bj);
      if (dcg::is_neighbor(si, g.score[p], v, t, low_score)) dcg::topk_insert(keys, idx, count, k, v, g.index[p]);
    };
    if (row_hi - row_lo + 1 > end - begin) {  // reach wider than the class: scan it
      for (int p = begin; p < end; ++p) consider(p);
      continue;
    }
    const uint64_t* first = g.key.data() + begin;
    const uint64_t* last = g.key.data() + end;
    for (int64_t row = row_lo; row <= row_hi; ++row) {
      const uint64_t key_hi = cell_key(row, col_hi);
      for (const uint64_t* it = std::lower_bound(first, last, cell_key(row, col_lo)); it != last && *it <= key_hi;
           ++it) {
        consider(static_cast<int>(it - g.key.data()));
      }
    }
  }
  (void)i;
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
          query_grid(grid, box[i], sc[i], t, low_score, i, k, keys.data(), idx.data(), count);
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
