"""Code that pastes into a training script: the manifest's statistics for common libraries."""

from __future__ import annotations

from normstat.errors import ManifestError
from normstat.manifest import Stats

__all__ = ["FORMATS", "snippet"]


def _list(values: list[float]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


_LAB_NOTE = (
    "# CIELAB statistics (normstat compute --color lab): L in [0, 100], a/b about [-128, 127];\n"
    "# convert each RGB image to CIELAB (D65) first, e.g. skimage.color.rgb2lab.\n"
)


def torchvision(stats: Stats) -> str:
    if stats.lab:
        return (
            "import kornia\n"
            "import torch\n"
            "from torchvision.transforms import v2\n\n" + _LAB_NOTE + "transform = v2.Compose([\n"
            "    v2.ToImage(),\n"
            "    v2.ToDtype(torch.float32, scale=True),  # sRGB in [0, 1]\n"
            "    v2.Lambda(kornia.color.rgb_to_lab),  # to CIELAB, the units of these statistics\n"
            f"    v2.Normalize(mean={_list(stats.mean)}, std={_list(stats.std)}),\n"
            "])\n"
        )
    return (
        "import torch\n"
        "from torchvision.transforms import v2\n\n"
        "transform = v2.Compose([\n"
        "    v2.ToImage(),\n"
        "    v2.ToDtype(torch.float32, scale=True),  # to [0, 1], the units of these statistics\n"
        f"    v2.Normalize(mean={_list(stats.mean)}, std={_list(stats.std)}),\n"
        "])\n"
    )


def keras(stats: Stats) -> str:
    raw = stats.data["raw"]
    return (
        "import keras\n\n"
        + (
            _LAB_NOTE
            if stats.lab
            else f"# Raw pixel units ({stats.data['dtype']}, 0..{stats.data['max_value']:g}): "
            "no Rescaling layer needed before it.\n"
        )
        + "normalize = keras.layers.Normalization(\n"
        f"    axis=-1, mean={_list(raw['mean'])}, variance={_list(raw['var'])}\n"
        ")\n"
    )


def albumentations(stats: Stats) -> str:
    return (
        "import albumentations as A\n\n"
        + (_LAB_NOTE if stats.lab else "")
        + "normalize = A.Normalize(\n"
        f"    mean={_list(stats.mean)},\n"
        f"    std={_list(stats.std)},\n"
        f"    max_pixel_value={float(stats.data['max_value'])!r},\n"
        ")\n"
    )


def pca(stats: Stats) -> str:
    """fb.resnet.torch's Lighting (AlexNet's PCA colour augmentation) with this dataset's PCA."""
    found = stats.data.get("pca")
    if found is None:
        raise ManifestError(stats.path, "manifest has no PCA: compute it with --covariance")
    rows = ",\n".join(f"    {_list(row)}" for row in found["eigenvectors"])
    return (
        "import torch\n\n"
        "# PCA of the channel covariance of pixels scaled to [0, 1] (fb.resnet.torch's units:\n"
        "# its ImageNet eigval is 0.2175, 0.0188, 0.0045). Eigenvectors are the columns.\n"
        f"eigval = torch.tensor({_list(found['eigenvalues'])})\n"
        f"eigvec = torch.tensor([\n{rows},\n])\n\n\n"
        "def lighting(img: torch.Tensor, alphastd: float = 0.1) -> torch.Tensor:\n"
        '    """AlexNet PCA lighting on a C×H×W image in [0, 1] (before Normalize)."""\n'
        "    alpha = torch.randn(eigval.shape[0]) * alphastd\n"
        "    return img + (eigvec @ (alpha * eigval)).view(-1, 1, 1)\n"
    )


FORMATS = {
    "torchvision": torchvision,
    "keras": keras,
    "albumentations": albumentations,
    "pca": pca,
}


def snippet(stats: Stats, fmt: str) -> str:
    return FORMATS[fmt](stats)
