"""The spectral detector's network, training loop, Platt calibration and ONNX export (torch: training only).

Input: `facecheck.spectrum.image_tiles` of each image, uint8 values as float32 [N, T, TILE, TILE, 3]: native tiles,
then overview tiles. One small CNN per tile set scores every tile; its first layer also sees a high-passed tile
(the tile minus its 3x3 local mean), so that pixel noise is not drowned by face content. Tile logits are averaged
per set, the two set means added, and Platt scaling, fitted on the calibration fold, turns the sum into a
probability. All of it is one graph: the exported ONNX model maps
tiles to the final score.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from facecheck.spectrum import TILE, TILES_PER_IMAGE, TILES_PER_SCALE
from training.spectral_data import TileSet

TRAIN_LABELS = ("stylegan", "real_ffhq", "real_natural")   # other_gen (SD 2.1) is kept out: see the model card


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TileNet(nn.Module):
    """~15 M multiply-adds per 64 px tile: the first layer at full resolution (where the traces live), then
    strided layers, then mean and max pooling (band energy, and its strongest local response)."""

    def __init__(self, width: int = 24):
        super().__init__()
        self.features = nn.Sequential(_conv(6, width, 1), _conv(width, 32, 2), _conv(32, 48, 2), _conv(48, 64, 2),
                                      _conv(64, 64, 1))
        self.head = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:            # [B, 3, S, S] in [-1, 1] -> [B]
        residual = x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        h = self.features(torch.cat([x, residual * 4.0], dim=1))
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)).squeeze(-1)


class SpectralNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.native_net, self.overview_net = TileNet(), TileNet()
        # Platt scaling, fitted after training: probability = sigmoid(scale * logit + shift)
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))

    @staticmethod
    def _mean_tile_logit(net: TileNet, tiles: torch.Tensor) -> torch.Tensor:   # [N, k, S, S, 3] 0..255 -> [N]
        n, k = tiles.shape[0], tiles.shape[1]
        x = tiles.reshape(n * k, TILE, TILE, 3).permute(0, 3, 1, 2) * (2.0 / 255.0) - 1.0
        return net(x).reshape(n, k).mean(1)

    def logit(self, tiles: torch.Tensor, split: int = TILES_PER_SCALE) -> torch.Tensor:
        """tiles [N, T, S, S, 3]: the first `split` native, the rest overview (training passes subsets)."""
        return (self._mean_tile_logit(self.native_net, tiles[:, :split])
                + self._mean_tile_logit(self.overview_net, tiles[:, split:]))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.platt[0] * self.logit(tiles) + self.platt[1])


def balanced_weights(label: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Each training label carries the same total weight; within a label a source of n copies weighs sqrt(n),
    so that neither LFW's 3700 thumbnails nor one big StyleGAN scrape sets the decision alone."""
    w = np.zeros(len(label), dtype=np.float64)
    for lab in TRAIN_LABELS:
        in_label = label == lab
        sources, counts = np.unique(source[in_label], return_counts=True)
        for src, n in zip(sources, counts):
            w[in_label & (source == src)] = np.sqrt(n) / n
        w[in_label] /= w[in_label].sum()
    return (w * len(w) / w.sum()).astype(np.float32)


def fit(train: TileSet, *, epochs: int = 8, tiles_per_step: int = 2, batch: int = 64, seed: int = 0,
        log=print) -> SpectralNet:
    """Each step sees `tiles_per_step` random tiles of each set of each image (the scorer averages all of them),
    each tile mirrored at random, and learns from the image label on the summed mean tile logits."""
    keep = np.isin(train.label, TRAIN_LABELS)
    tiles = np.ascontiguousarray(train.tiles[keep])
    y = torch.from_numpy(train.is_gan[keep])
    w = torch.from_numpy(balanced_weights(train.label[keep], train.source[keep]))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SpectralNet()
    steps = epochs * ((len(tiles) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(tiles))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            pick = np.stack([np.concatenate([rng.choice(TILES_PER_SCALE, tiles_per_step, replace=False),
                                             TILES_PER_SCALE + rng.choice(TILES_PER_SCALE, tiles_per_step, replace=False)])
                             for _ in idx])
            x = tiles[idx[:, None], pick]                                  # [B, 2k, S, S, 3]
            flip = rng.random(x.shape[:2]) < 0.5
            x[flip] = x[flip][:, :, ::-1]
            logit = model.logit(torch.from_numpy(x.astype(np.float32)), split=tiles_per_step)
            loss = (F.binary_cross_entropy_with_logits(logit, y[idx], reduction="none") * w[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log:
            log(f"  epoch {epoch + 1}/{epochs}: weighted loss {total / len(tiles):.4f}")
    model.eval()
    return model


@torch.no_grad()
def logits_of(model: SpectralNet, tiles: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([model.logit(torch.from_numpy(np.asarray(tiles[i:i + batch], dtype=np.float32))).numpy()
                           for i in range(0, len(tiles), batch)])


def calibrate(model: SpectralNet, calib_logits: np.ndarray, calib_is_gan: np.ndarray) -> None:
    """Platt scaling on the calibration fold, classes balanced (0.5 = even odds at equal priors)."""
    from sklearn.linear_model import LogisticRegression
    lr = LogisticRegression(C=100.0, class_weight="balanced").fit(calib_logits[:, None], calib_is_gan)
    model.platt.copy_(torch.tensor([float(lr.coef_[0, 0]), float(lr.intercept_[0])]))


def platt_score(model: SpectralNet, logits: np.ndarray) -> np.ndarray:
    a, b = model.platt.tolist()
    return 1.0 / (1.0 + np.exp(-(a * logits + b)))


def export_onnx(model: SpectralNet, path, metadata: dict[str, str]) -> None:
    import onnx
    model.eval()
    dummy = torch.zeros(2, TILES_PER_IMAGE, TILE, TILE, 3)
    torch.onnx.export(model, (dummy,), str(path), input_names=["tiles"], output_names=["score"],
                      dynamic_axes={"tiles": {0: "n"}, "score": {0: "n"}}, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(proto, str(path))
