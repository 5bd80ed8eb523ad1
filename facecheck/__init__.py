"""facecheck: find StyleGAN faces and reused avatars in folders of profile photos, offline.

    from facecheck import score_image, scan
    result = score_image("avatar.jpg")          # one image -> Result
    for r in scan("folder/", out="results/"):   # a folder or a list of paths -> Results
        ...
"""
from .api import scan, score_image
from .settings import Settings
from .hashing import Hash
from .loading import LoadError, load_image
from .result import Result

__all__ = ["score_image", "scan", "Settings", "Result", "Hash", "load_image", "LoadError"]
__version__ = "0.1.0"
