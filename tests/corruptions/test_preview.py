from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robust_train.cli import preview as P
from robust_train.corruptions import corrupt, list_corruptions


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    path = tmp_path_factory.mktemp("preview") / "chelsea.png"
    Image.fromarray(skdata.chelsea()).save(path)  # 300 x 451, not square
    return path


def test_load_image_presets(photo_file: Path) -> None:
    from PIL import Image

    x, preset = P.load_image(photo_file)
    assert preset == "imagenet" and x.shape == (1, 3, 224, 224)
    # Resize(256) of the shorter side (300 x 451 -> 256 x 384) and a centre crop, as the ImageNet-C pipeline
    ref = np.asarray(Image.open(photo_file).convert("RGB").resize((384, 256), Image.BILINEAR))[16:240, 80:304]
    assert np.array_equal((x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy(), ref)
    for name, size in (("tinyimagenet", 64), ("cifar", 32)):
        x, preset = P.load_image(photo_file, name)
        assert preset == name and x.shape == (1, 3, size, size)
    with pytest.raises(ValueError, match="preset"):
        P.load_image(photo_file, "mnist")
    with pytest.raises(FileNotFoundError):
        P.load_image(photo_file.with_name("missing.png"))


def test_preview_grid_cells_equal_corrupt(photo_file: Path) -> None:
    x, preset = P.load_image(photo_file, "cifar")
    names = list_corruptions()[:3]
    grid, rows = P.preview_grid(x, names, (1, 3, 5), preset=preset, seed=4)
    assert rows == names and grid.shape == (3, 3, 3, 32, 32)
    for r, name in enumerate(names):
        ref = corrupt(
            x.expand(3, -1, -1, -1), name, torch.tensor([1.0, 3.0, 5.0], dtype=torch.float64), preset=preset, seed=4
        )
        assert torch.equal(grid[r], ref)
    with pytest.raises(ValueError, match="unknown corruption"):
        P.preview_grid(x, ["not_a_corruption"])


def test_preview_writes_figure_with_all_registered(photo_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = P.preview(photo_file, tmp_path / "sub" / "grid.png", preset="cifar", seed=0)
    assert out.is_file()
    with Image.open(out) as im:
        n = len(list_corruptions())
        assert im.format == "PNG" and im.size[1] >= 100 * n  # one >= 1-inch row per registered corruption
    (tmp_path / "notes.txt").write_text("not an image")
    assert P.main([str(tmp_path / "notes.txt"), "--out", str(tmp_path / "x.png")]) == 2


def test_preview_cli(photo_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.png"
    args = [
        str(photo_file),
        "--out",
        str(out),
        "--preset",
        "cifar",
        "--corruptions",
        "contrast,pixelate",
        "--severities",
        "1,5",
        "--no-clean",
    ]
    assert P.main(args) == 0 and out.is_file()
    assert P.main([str(tmp_path / "nope.png"), "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    corrupt_cli = pytest.importorskip("robust_train.cli.corrupt")
    out2 = tmp_path / "via_corrupt.png"
    assert (
        corrupt_cli.main(
            ["preview", str(photo_file), "--out", str(out2), "--preset", "cifar", "--corruptions", "contrast"]
        )
        == 0
    )
    assert out2.is_file()
