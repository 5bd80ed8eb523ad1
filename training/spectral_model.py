"""The spectral detector's networks, Platt calibration and ONNX export (torch: training only).

Inputs: `facecheck.spectrum.image_features` of each image as float32 0..255: tiles [N, T, TILE, TILE, 3] cut at
native resolution and the whole image [N, S, S, 3]. A residual CNN scores every tile (its first layer also sees a
high-passed tile, the tile minus its 3x3 local mean, so that pixel noise is not drowned by face content); the
tile logits are averaged. A second residual CNN scores the whole image (same high-pass input). The two logits
are added and Platt scaling, fitted on the calibration fold, turns the sum into a probability. All of it is one
graph: the exported ONNX model maps (tiles, whole) to the final score.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from facecheck.spectrum import TILE, TILES_PER_IMAGE, WHOLE_SIDE

TRAIN_LABELS = ("stylegan", "real_ffhq", "real_natural")   # other_gen (SD 2.1) is kept out: see the model card


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Block(nn.Module):
    """Basic residual block; a strided one halves the resolution (1x1 strided shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)), inplace=True)))
        return F.relu(y + (x if self.short is None else self.short(x)), inplace=True)


def _with_residual(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] -> [B, 6, H, W]: the image and its high-pass residual (minus 3x3 local mean)."""
    residual = x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return torch.cat([x, residual * 4.0], dim=1)


class TileNet(nn.Module):
    """~15 M multiply-adds per 64 px tile: the first layer at full resolution (where the traces live), then
    strided layers, then mean and max pooling (band energy, and its strongest local response)."""

    def __init__(self, width: int = 24):
        super().__init__()
        self.features = nn.Sequential(_conv(6, width, 1), _conv(width, 32, 2), _conv(32, 48, 2), _conv(48, 64, 2),
                                      _conv(64, 64, 1))
        self.head = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:            # [B, 3, S, S] in [-1, 1] -> [B]
        h = self.features(_with_residual(x))
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)).squeeze(-1)


class WholeNet(nn.Module):
    """Residual CNN on the whole image: a full-resolution stem, then four stages, each halving the resolution."""

    def __init__(self, widths=(16, 32, 64, 128, 192), blocks=(1, 1, 1, 1), drop: float = 0.2):
        super().__init__()
        layers = [_conv(6, widths[0], 1)]
        cin = widths[0]
        for w, n in zip(widths[1:], blocks):
            layers.append(Block(cin, w, 2))
            layers += [Block(w, w, 1) for _ in range(n - 1)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(2 * cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:            # [B, 3, S, S] in [-1, 1] -> [B]
        h = self.features(_with_residual(x))
        return self.head(self.drop(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1))).squeeze(-1)


WHOLE_CONFIGS = {"base": dict(widths=(16, 32, 64, 128, 192), blocks=(1, 1, 1, 1)),
                 "lite": dict(widths=(16, 24, 48, 96, 160), blocks=(1, 1, 1, 1))}


class SpectralNet(nn.Module):
    def __init__(self, whole: str = "base", tile_width: int = 24, drop: float = 0.2):
        super().__init__()
        self.config = {"whole": whole, "tile_width": tile_width, "drop": drop}
        self.tile_net, self.whole_net = TileNet(tile_width), WholeNet(**WHOLE_CONFIGS[whole], drop=drop)
        # Platt scaling, fitted after training: probability = sigmoid(scale * logit + shift)
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))

    @staticmethod
    def _prep(images: torch.Tensor) -> torch.Tensor:            # [B, S, S, 3] 0..255 -> [B, 3, S, S] in [-1, 1]
        return images.permute(0, 3, 1, 2) * (2.0 / 255.0) - 1.0

    def branch_logits(self, tiles: torch.Tensor, whole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tiles [N, k, S, S, 3] (any k), whole [N, W, W, 3] -> (mean tile logit [N], whole-image logit [N])."""
        n, k = tiles.shape[0], tiles.shape[1]
        t = self.tile_net(self._prep(tiles.reshape(n * k, TILE, TILE, 3))).reshape(n, k).mean(1)
        return t, self.whole_net(self._prep(whole))

    def logit(self, tiles: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
        t, w = self.branch_logits(tiles, whole)
        return t + w

    def forward(self, tiles: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.platt[0] * self.logit(tiles, whole) + self.platt[1])


def balanced_weights(label: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Each training label carries the same total weight; within a label a source of n images weighs sqrt(n),
    so that neither LFW's thousands of thumbnails nor one big StyleGAN scrape sets the decision alone."""
    w = np.zeros(len(label), dtype=np.float64)
    for lab in TRAIN_LABELS:
        in_label = label == lab
        if not in_label.any():
            continue
        sources, counts = np.unique(source[in_label], return_counts=True)
        for src, n in zip(sources, counts):
            w[in_label & (source == src)] = np.sqrt(n) / n
        w[in_label] /= w[in_label].sum()
    return (w * len(w) / w.sum()).astype(np.float32)


def load_model(path) -> SpectralNet:
    """A SpectralNet from a checkpoint written by training/train_spectral_gpu.py ({"config", "state_dict"})."""
    ckpt = torch.load(path, map_location="cpu")
    model = SpectralNet(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


@torch.no_grad()
def logits_of(model: SpectralNet, tiles: np.ndarray, whole: np.ndarray, batch: int = 128) -> np.ndarray:
    """Uncalibrated logits [N] (torch, CPU) of feature arrays as made by facecheck.spectrum.batch_features."""
    model.eval()
    return np.concatenate([model.logit(torch.from_numpy(np.asarray(tiles[i:i + batch], np.float32)),
                                       torch.from_numpy(np.asarray(whole[i:i + batch], np.float32))).numpy()
                           for i in range(0, len(tiles), batch)])


def fit_platt(calib_logits: np.ndarray, calib_is_gan: np.ndarray) -> tuple[float, float]:
    """Platt scaling on the calibration fold, classes balanced (0.5 = even odds at equal priors)."""
    from sklearn.linear_model import LogisticRegression
    lr = LogisticRegression(C=100.0, class_weight="balanced").fit(np.asarray(calib_logits)[:, None], calib_is_gan)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def platt_score(platt: tuple[float, float], logits: np.ndarray) -> np.ndarray:
    a, b = platt
    return 1.0 / (1.0 + np.exp(-(a * np.asarray(logits, np.float64) + b)))


def export_onnx(model: SpectralNet, path, metadata: dict[str, str], platt: tuple[float, float] | None = None) -> None:
    """Export (tiles, whole) -> score; `platt` (scale, shift) is written into the graph first when given."""
    import onnx
    model = model.cpu().float().eval()
    if platt is not None:
        model.platt.copy_(torch.tensor(platt))
    dummy = (torch.zeros(2, TILES_PER_IMAGE, TILE, TILE, 3), torch.zeros(2, WHOLE_SIDE, WHOLE_SIDE, 3))
    torch.onnx.export(model, dummy, str(path), input_names=["tiles", "whole"], output_names=["score"],
                      dynamic_axes={"tiles": {0: "n"}, "whole": {0: "n"}, "score": {0: "n"}}, opset_version=17,
                      dynamo=False)
    proto = onnx.load(str(path))
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(proto, str(path))
