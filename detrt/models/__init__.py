"""PyTorch model definitions: backbone, deformable attention, DH-DETR, CQ-DINO, matcher, losses, configs.

    from detrt.models import build_model, list_configs
    model = build_model("dhdetr_r18_tiny")        # -> nn.Module; model.config is its DetrConfig
"""

from detrt.models.configs import (DetrConfig, build_criterion, build_model, build_postprocess, get_config,
                                  list_configs)

__all__ = ["DetrConfig", "build_criterion", "build_model", "build_postprocess", "get_config", "list_configs"]
