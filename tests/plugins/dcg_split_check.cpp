// detrt tests/plugins/dcg_split_check.cpp: the CUDA DCG kernel's split + merge (plugins/cuda/dcgNeighbors.cu),
// run on the CPU with the same plugins/common/dcg_core.h functions in the same order, so that
// tests/plugins/test_dcg_split.py can compare its neighbour lists with the CPU kernel's, slot for slot.
//
//   dcg_split_check IN OUT
//   IN:  int32 B, N, k, lanes; float32 iou_threshold, low_score; float32 boxes [B, N, 4]; float32 scores [B, N]
//   OUT: int32 indices [B, N, k]; int32 valid [B, N, k]
// Lane l of a query keeps the top-k of the candidates j = l (mod lanes), in increasing j (the kernel's tiles
// visit them in that order); then lane l merges lane l + h's list for h = lanes/2 ... 1 (the kernel's tree).
// Compile with -ffp-contract=off (dcg_core.h).
#include <cstdint>
#include <cstdio>
#include <vector>

#include "dcg_core.h"

using namespace detrt;

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "usage: dcg_split_check IN OUT\n");
        return 2;
    }
    std::FILE* in = std::fopen(argv[1], "rb");
    int32_t head[4];
    float thresholds[2];
    if (in == nullptr || std::fread(head, sizeof head, 1, in) != 1
        || std::fread(thresholds, sizeof thresholds, 1, in) != 1)
    {
        std::fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    int const batch = head[0], n = head[1], k = head[2], lanes = head[3];
    std::vector<float> boxes(static_cast<size_t>(batch) * n * 4), scores(static_cast<size_t>(batch) * n);
    if (std::fread(boxes.data(), sizeof(float), boxes.size(), in) != boxes.size()
        || std::fread(scores.data(), sizeof(float), scores.size(), in) != scores.size())
    {
        std::fprintf(stderr, "%s is short\n", argv[1]);
        return 2;
    }
    std::fclose(in);

    std::vector<int32_t> indices(static_cast<size_t>(batch) * n * k), valid(indices.size());
    std::vector<float> keys(static_cast<size_t>(lanes) * k), merged_keys(k);
    std::vector<int> kept(static_cast<size_t>(lanes) * k), merged(k), count(lanes);
    for (int b = 0; b < batch; ++b)
    {
        std::vector<dcg::Box> box(n);
        float const* bb = boxes.data() + static_cast<size_t>(b) * n * 4;
        float const* s = scores.data() + static_cast<size_t>(b) * n;
        for (int j = 0; j < n; ++j)
        {
            box[j] = dcg::box_from_cxcywh(bb[4 * j], bb[4 * j + 1], bb[4 * j + 2], bb[4 * j + 3]);
        }
        for (int i = 0; i < n; ++i)
        {
            for (int lane = 0; lane < lanes; ++lane)
            {
                count[lane] = 0;
                for (int j = lane; j < n; j += lanes)
                {
                    float const iou = dcg::iou(box[i], box[j]);
                    if (dcg::is_neighbor(s[i], s[j], iou, thresholds[0], thresholds[1]))
                    {
                        dcg::topk_insert(&keys[lane * k], &kept[lane * k], count[lane], k, iou, j);
                    }
                }
            }
            for (int h = lanes / 2; h > 0; h /= 2)
            {
                for (int lane = 0; lane < h; ++lane)
                {
                    int const other = lane + h;
                    count[lane] = dcg::topk_merge(&keys[lane * k], &kept[lane * k], count[lane], &keys[other * k],
                        &kept[other * k], count[other], k, merged_keys.data(), merged.data());
                    for (int t = 0; t < count[lane]; ++t)
                    {
                        keys[lane * k + t] = merged_keys[t];
                        kept[lane * k + t] = merged[t];
                    }
                }
            }
            size_t const slot = (static_cast<size_t>(b) * n + i) * k;
            dcg::topk_write(kept.data(), count[0], k, i, indices.data() + slot, valid.data() + slot);
        }
    }
    std::FILE* out = std::fopen(argv[2], "wb");
    if (out == nullptr || std::fwrite(indices.data(), sizeof(int32_t), indices.size(), out) != indices.size()
        || std::fwrite(valid.data(), sizeof(int32_t), valid.size(), out) != valid.size() || std::fclose(out) != 0)
    {
        std::fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }
    return 0;
}
