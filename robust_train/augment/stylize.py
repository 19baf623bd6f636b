"""On-the-fly stylization with AdaIN (Huang and Belongie 2017), as used to build Stylized-ImageNet (Geirhos et al.).

Each flagged sample (probability ``p``) is re-rendered in the style of a randomly chosen image from a style folder:
VGG-19 features up to ``relu4_1`` are given the style's channel statistics (:func:`~robust_train.functional.adain.
adain`), blended with the content features by ``alpha`` and decoded. Stylized-ImageNet used ``alpha = 1`` and style
images from Kaggle's *Painter by Numbers*; its "SIN+IN" training mixes stylised and natural images, which ``p = 0.5``
reproduces per batch.

**Weights** (cannot be downloaded by this code): the standard AdaIN encoder ``vgg_normalised.pth`` (VGG-19 with a
leading 1x1 colour/mean conv and reflection padding, converted from the authors' Torch model) and decoder
``decoder.pth`` as released by naoto0804/pytorch-AdaIN (GitHub release page of that repository, tag ``v0.0.0``;
its README links them). Pass their paths (``encoder_path`` / ``decoder_path``; Hydra: ``augment.encoder_path=...``).
They are loaded lazily at the first call, kept out of ``state_dict`` (checkpoints stay small and load without them),
frozen, and moved to the batch's device. ``pretrained=False`` uses fixed random weights instead (tests, debugging).

**Small and grey images**: the encoder downsamples 8x, so images whose shorter side is below ``min_encoder_size``
(default 128) are upsampled bilinearly for the encoder (to a multiple of 8) and the result is resized back with
antialiasing; sizes that are not multiples of 8 are handled the same way. One-channel images are stylised as grey RGB
and converted back with ITU-R 601 luma; 3-channel grey images (Fashion-MNIST as fed here) come out in colour unless
``grayscale_output=True``.

Gradients reach the input when it requires them (the networks themselves are frozen).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..corruptions.params import Params
from ..functional.adain import adain, adain_blend, channel_mean_std
from ..functional.checks import check_image, check_range
from .base import BatchAugment

__all__ = [
    "Stylize",
    "build_adain_decoder",
    "build_vgg_encoder",
    "list_style_files",
    "load_images",
    "load_style_images",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
WEIGHTS_HELP = (
    "download vgg_normalised.pth and decoder.pth from the v0.0.0 release of https://github.com/naoto0804/pytorch-AdaIN "
    "(see its README)"
)

# (kind, argument) per layer; indices match the keys of the released state dicts ("0.weight", "2.weight", ...).
_ENCODER_LAYERS: tuple[tuple[str, int], ...] = (
    ("conv1", 3),
    *(("block", c) for c in (64, 64)),
    ("pool", 0),
    *(("block", c) for c in (128, 128)),
    ("pool", 0),
    *(("block", c) for c in (256, 256, 256, 256)),
    ("pool", 0),
    ("block", 512),  # relu4_1: the last layer AdaIN uses
)
_DECODER_LAYERS: tuple[tuple[str, int], ...] = (
    ("block", 256),
    ("up", 0),
    *(("block", c) for c in (256, 256, 256, 128)),
    ("up", 0),
    *(("block", c) for c in (128, 64)),
    ("up", 0),
    ("block", 64),
    ("last", 3),
)


def build_vgg_encoder() -> nn.Sequential:
    """The normalised VGG-19 of AdaIN up to ``relu4_1`` (31 modules), layout-compatible with ``vgg_normalised.pth``.

    Layers: a 1x1 conv (3->3, the colour/mean preprocessing of the converted Caffe model), then blocks of
    (reflection pad 1, 3x3 conv, ReLU) with 64, 64 | 128, 128 | 256 x 4 | 512 channels separated by 2x2 max pools
    (``ceil_mode=True``).

    Example:
        >>> build_vgg_encoder()(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 512, 4, 4])
    """
    layers: list[nn.Module] = []
    ch = 3
    for kind, arg in _ENCODER_LAYERS:
        if kind == "conv1":
            layers.append(nn.Conv2d(3, arg, 1))
            ch = arg
        elif kind == "pool":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, arg, 3), nn.ReLU()]
            ch = arg
    return nn.Sequential(*layers)


def build_adain_decoder() -> nn.Sequential:
    """The AdaIN decoder (mirror of the encoder, nearest 2x upsampling), layout-compatible with ``decoder.pth``.

    Example:
        >>> build_adain_decoder()(torch.rand(1, 512, 4, 4)).shape
        torch.Size([1, 3, 32, 32])
    """
    layers: list[nn.Module] = []
    ch = 512
    for kind, arg in _DECODER_LAYERS:
        if kind == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        elif kind == "last":
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, arg, 3)]
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, arg, 3), nn.ReLU()]
            ch = arg
    return nn.Sequential(*layers)


def _load_weights(net: nn.Sequential, path: str | os.PathLike | None, key: str, what: str) -> None:
    if path is None or str(path) == "":
        raise FileNotFoundError(f"{key}: the AdaIN {what} weights path is not set; {WEIGHTS_HELP} and set {key}=<path>")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise FileNotFoundError(f"{key}: AdaIN {what} weights not found at '{p}'; {WEIGHTS_HELP} and set {key}=<path>")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"{key}: '{p}' is not an AdaIN {what} state dict (missing {missing[:4]}...); {WEIGHTS_HELP}")
    bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{key}: '{p}' has wrong shapes for {bad[:4]}; expected the standard AdaIN {what}")
    net.load_state_dict({k: state[k] for k in own})


@functools.lru_cache(maxsize=1)
def _random_state() -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Fixed random AdaIN weights for ``pretrained=False`` (He-normal convs, decoder output near mid-grey)."""
    with torch.random.fork_rng(devices=[]):  # never disturbs the global stream
        torch.manual_seed(0)
        enc, dec = build_vgg_encoder(), build_adain_decoder()
        for net in (enc, dec):
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        last = dec[-1]
        assert isinstance(last, nn.Conv2d)
        nn.init.normal_(last.weight, std=0.01)
        nn.init.constant_(last.bias, 0.5)
    return enc.state_dict(), dec.state_dict()


def list_style_files(style_dir: str | os.PathLike, max_images: int | None = None) -> list[Path]:
    """Image files below ``style_dir`` (recursively, sorted), at most ``max_images`` of them.

    Raises:
        FileNotFoundError: missing folder. ValueError: no images in it.
    """
    root = Path(os.path.expanduser(str(style_dir)))
    if not root.is_dir():
        raise FileNotFoundError(f"style_dir: folder '{root}' does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if max_images is not None:
        files = files[: int(max_images)]
    if not files:
        raise ValueError(f"style_dir: no images ({', '.join(IMAGE_EXTENSIONS)}) found under '{root}'")
    return files


def load_images(files: Sequence[str | os.PathLike], size: int) -> Tensor:
    """Load images, resize the shorter side to ``size`` (PIL bilinear) and centre-crop: (N, 3, size, size) in [0, 1]."""
    from PIL import Image

    out = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = size / min(w, h)
            nw, nh = max(size, round(w * s)), max(size, round(h * s))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            out[i] = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
    return out.float() / 255.0


def load_style_images(style_dir: str | os.PathLike, size: int, max_images: int | None = None) -> Tensor:
    """Load a (small) folder of style images: :func:`list_style_files` then :func:`load_images`.

    Returns:
        (N, 3, size, size) float32 in [0, 1].
    """
    return load_images(list_style_files(style_dir, max_images), size)


class Stylize(BatchAugment):
    """Stylise a random subset of the batch with AdaIN and random style images.

    Args:
        style_dir: folder of style images (e.g. Painter by Numbers). Either this or ``styles``.
        styles: style images as a tensor (N, 3, S, S) in [0, 1] (instead of ``style_dir``).
        encoder_path: path of ``vgg_normalised.pth`` (module docstring).
        decoder_path: path of ``decoder.pth``.
        alpha: stylisation strength in [0, 1], or a ``(low, high)`` range sampled per sample (Stylized-ImageNet: 1).
        p: probability that a sample is stylised (``0.5`` ~ SIN+IN).
        style_size: side of the style images fed to the encoder.
        max_styles: use at most this many style images from the folder.
        min_encoder_size: upsample images whose shorter side is smaller than this for the encoder.
        grayscale_output: convert stylised 3-channel images to grey (keeps a grey dataset grey).
        pretrained: load the weights; ``False`` uses fixed random weights (tests).
        stats_cache: file where the style statistics are saved and reused (large style folders).
        config_key: prefix used in error messages (the Hydra node holding this module).
        seed: seed of the module's generator.

    Params: ``apply`` (B,) bool, ``style`` (B,) int64 index of the style image, ``alpha`` (B,) float64.

    Example:
        >>> aug = Stylize(styles=torch.rand(2, 3, 16, 16), pretrained=False, p=1.0, min_encoder_size=16, seed=0)
        >>> aug(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    channels = (1, 3)

    def __init__(
        self,
        style_dir: str | None = None,
        styles: Tensor | None = None,
        encoder_path: str | None = None,
        decoder_path: str | None = None,
        alpha: float | Sequence[float] = 1.0,
        p: float = 0.5,
        style_size: int = 256,
        max_styles: int | None = None,
        min_encoder_size: int = 128,
        grayscale_output: bool = False,
        pretrained: bool = True,
        stats_cache: str | None = None,
        config_key: str = "augment",
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        if (style_dir is None) == (styles is None):
            raise ValueError(f"{config_key}: give exactly one of style_dir (a folder of images) or styles (a tensor)")
        if styles is not None:
            check_image(styles, "styles")
        if isinstance(alpha, (int, float)):
            check_range(float(alpha), 0.0, 1.0, "alpha")
            self.alpha_range = (float(alpha), float(alpha))
        else:
            lo, hi = (float(v) for v in alpha)
            check_range(lo, 0.0, 1.0, "alpha low")
            check_range(hi, 0.0, 1.0, "alpha high")
            if lo > hi:
                raise ValueError(f"alpha: expected low <= high, got {tuple(alpha)}")
            self.alpha_range = (lo, hi)
        if int(min_encoder_size) < 16:
            raise ValueError(f"min_encoder_size: expected >= 16, got {min_encoder_size}")
        self.style_dir = style_dir
        self.encoder_path = encoder_path
        self.decoder_path = decoder_path
        self.style_size = int(style_size)
        self.max_styles = max_styles
        self.min_encoder_size = int(min_encoder_size)
        self.grayscale_output = bool(grayscale_output)
        self.pretrained = bool(pretrained)
        self.config_key = config_key
        # Lazily created state lives outside the module tree (no state_dict entries, no .to() surprises).
        self.stats_cache = stats_cache
        self._styles: list[Tensor | None] = [None if styles is None else styles.detach().float().cpu()]
        self._files: list[Path] | None = None
        self._nets: dict[str, nn.Sequential] = {}
        self._stats: dict[str, tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ lazy state
    @property
    def style_files(self) -> list[Path]:
        """The style image files (listed at first use; empty when styles were given as a tensor)."""
        if self._styles[0] is not None:
            return []
        if self._files is None:
            self._files = list_style_files(self.style_dir, self.max_styles)  # type: ignore[arg-type]
        return self._files

    @property
    def styles(self) -> Tensor:
        """The style images (N, 3, S, S) in memory (loads the whole folder: meant for small style sets and tests)."""
        if self._styles[0] is None:
            return load_images(self.style_files, self.style_size)
        return self._styles[0]

    @property
    def num_styles(self) -> int:
        """Number of style images."""
        return int(self._styles[0].shape[0]) if self._styles[0] is not None else len(self.style_files)

    def networks(self, device: torch.device | str = "cpu") -> tuple[nn.Sequential, nn.Sequential]:
        """Encoder and decoder on ``device`` (built and loaded at first use, frozen, eval mode)."""
        if not self._nets:
            with torch.device("meta"):  # no default init: every weight comes from a file or the random state
                enc, dec = build_vgg_encoder(), build_adain_decoder()
            enc, dec = enc.to_empty(device="cpu"), dec.to_empty(device="cpu")
            if self.pretrained:
                _load_weights(enc, self.encoder_path, f"{self.config_key}.encoder_path", "encoder")
                _load_weights(dec, self.decoder_path, f"{self.config_key}.decoder_path", "decoder")
            else:
                enc_sd, dec_sd = _random_state()
                enc.load_state_dict(enc_sd)
                dec.load_state_dict(dec_sd)
            for net in (enc, dec):
                net.eval().requires_grad_(False)
            self._nets.update(encoder=enc, decoder=dec)
        enc, dec = self._nets["encoder"], self._nets["decoder"]
        device = torch.device(device)
        if next(enc.parameters()).device != device:
            enc.to(device)
            dec.to(device)
        return enc, dec

    def _style_chunks(self, chunk: int) -> Iterator[Tensor]:
        if self._styles[0] is not None:
            yield from torch.split(self._styles[0], chunk)
            return
        files = self.style_files
        for i in range(0, len(files), chunk):
            yield load_images(files[i : i + chunk], self.style_size)

    def _cache_key(self) -> str:
        h = hashlib.sha1()
        h.update(f"{self.style_size}|{self.pretrained}|".encode())
        for p in (self.encoder_path,) if self.pretrained else ():
            st = Path(os.path.expanduser(str(p))).stat()
            h.update(f"{Path(str(p)).name}|{st.st_size}|".encode())
        if self._styles[0] is not None:
            h.update(self._styles[0].mul(255).round().to(torch.uint8).numpy().tobytes())
        else:
            for f in self.style_files:
                h.update(f"{f}|{f.stat().st_size}|".encode())
        return h.hexdigest()

    def style_stats(self, device: torch.device | str = "cpu", chunk: int = 32) -> tuple[Tensor, Tensor]:
        """Channel mean and std (N, 512) of every style image's ``relu4_1`` features, computed once.

        Style images are streamed from disk ``chunk`` at a time (a Painter-by-Numbers-sized folder never sits in
        memory); with ``stats_cache`` the statistics are saved there and reused while the style files, style size
        and encoder weights file are unchanged.
        """
        if "cpu" not in self._stats:
            key = self._cache_key() if self.stats_cache else ""
            cache = Path(os.path.expanduser(str(self.stats_cache))) if self.stats_cache else None
            if cache is not None and cache.is_file():
                doc = torch.load(cache, map_location="cpu", weights_only=True)
                if doc.get("key") == key:
                    self._stats["cpu"] = (doc["mean"], doc["std"])
            if "cpu" not in self._stats:
                enc, _ = self.networks(device)
                means, stds = [], []
                with torch.no_grad():
                    for s in self._style_chunks(chunk):
                        m, sd = channel_mean_std(enc(s.to(device)))
                        means.append(m.cpu())
                        stds.append(sd.cpu())
                self._stats["cpu"] = (torch.cat(means), torch.cat(stds))
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache.with_suffix(cache.suffix + ".tmp")
                    torch.save({"key": key, "mean": self._stats["cpu"][0], "std": self._stats["cpu"][1]}, tmp)
                    os.replace(tmp, cache)
        dev = str(torch.device(device))
        if dev not in self._stats:
            self._stats[dev] = tuple(t.to(device) for t in self._stats["cpu"])  # type: ignore[assignment]
        return self._stats[dev]

    def style_digest(self) -> str:
        """Short hash of the style bank (files or tensor) and encoder settings, for logging which bank a run used."""
        return self._cache_key()[:12]

    # ------------------------------------------------------------------ params / apply
    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw ``apply``, ``style`` and ``alpha`` per sample (CPU)."""
        g = self._gen(generator)
        params = super().sample_params(batch_size, g)
        params["style"] = torch.randint(0, self.num_styles, (batch_size,), generator=g, dtype=torch.int64)
        lo, hi = self.alpha_range
        params["alpha"] = lo + (hi - lo) * torch.rand(batch_size, generator=g, dtype=torch.float64)
        return params

    def _encoder_size(self, h: int, w: int) -> tuple[int, int]:
        scale = max(1.0, self.min_encoder_size / min(h, w))
        return (int(math.ceil(h * scale / 8.0)) * 8, int(math.ceil(w * scale / 8.0)) * 8)

    def stylize(self, x: Tensor, style: Tensor, alpha: Tensor) -> Tensor:
        """Stylise every image of ``x`` (B, 3, H, W) with style indices (B,) and strengths (B,) -> (B, 3, H, W)."""
        enc, dec = self.networks(x.device)
        s_mean, s_std = self.style_stats(x.device)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        size = self._encoder_size(h, w)
        work = x.float()
        if size != (h, w):
            work = F.interpolate(work, size=size, mode="bilinear", align_corners=False)
        feat = enc(work)
        idx = style.to(x.device)
        target = adain(feat, s_mean[idx], s_std[idx])
        out = dec(adain_blend(feat, target, alpha.to(device=x.device, dtype=feat.dtype)))
        if tuple(out.shape[-2:]) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return out.clamp(0.0, 1.0).to(x.dtype)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Stylise the flagged samples; the others pass unchanged."""
        sel = torch.nonzero(params["apply"].to("cpu", torch.bool)).view(-1)
        if not sel.numel():
            return x
        grey_in = x.shape[1] == 1
        dsel = sel.to(x.device)
        xs = x[dsel]
        xs3 = xs.expand(-1, 3, -1, -1) if grey_in else xs
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            st = self.stylize(xs3, params["style"].cpu()[sel], params["alpha"].cpu()[sel])
            if grey_in or self.grayscale_output:
                lum = (st * torch.tensor([0.299, 0.587, 0.114], dtype=st.dtype, device=st.device).view(1, 3, 1, 1)).sum(
                    1, keepdim=True
                )
                st = lum if grey_in else lum.expand(-1, 3, -1, -1)
            out = x.clone()
            out[dsel] = st
        return out

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        src = self.style_dir if self.style_dir is not None else f"tensor({self.num_styles} styles)"
        return (
            f"styles={src!r}, alpha={self.alpha_range}, p={self.p}, min_encoder_size={self.min_encoder_size}, "
            f"grayscale_output={self.grayscale_output}, pretrained={self.pretrained}"
        )
