"""Measuring facecheck on labelled images: `facecheck eval`, and the data and degradations that the
tests, benchmarks and training scripts share.

- `dataset`: where the labelled development data is (../shared/data) and how a manifest reads;
- `degrade`: platform-style degradations (downscale, JPEG, crops, mirroring, frames...);
- `evaluate`: detection quality through the scan's own core (ROC, TPR at fixed FPR, plots).

The scan path (facecheck.pipeline, api, report, verdict, ...) never imports this package; tests/test_layout.py checks it.
"""
