"""``RobustClassifier``: the LightningModule shared by every training recipe.

Data flow of a training batch::

    worker: (x uint8 (B, C, H, W), y (B,), index (B,))
      -> on_after_batch_transfer (on the device): x -> float [0, 1]; if training: views = train_augment(x)
      -> training_step: logits = net(normalize(cat(views)))  ->  loss(logits, y, num_splits)

Augmentation contract (``train_augment``): an ``nn.Module`` called on the device with ``x`` float in [0, 1], shape
(B, C, H, W), in training only. It returns either a tensor of the same shape (one view) or a tuple/list of ``k``
tensors of that shape, which are concatenated along the batch in the order ``[clean, aug_1, ..., aug_{k-1}]``
(the splits contract of AugMix/JSD). Its ``forward`` may also accept the keywords ``y`` (labels, (B,)) and ``model``
(a callable mapping [0, 1] images to logits, for adversarial views); they are passed when declared.

Loss contract (``loss``): a module called as ``loss(logits, y, num_splits=k)`` when its ``forward`` declares a
``num_splits`` parameter, with ``logits`` of shape (k * B, num_classes) and ``y`` of shape (B,) (the labels of the
clean split); a JSD or logit-pairing loss splits ``logits`` into ``k`` chunks. Any other loss (for example
``torch.nn.CrossEntropyLoss``) is called as ``loss(logits, y.repeat(k))``, i.e. on every view. Training accuracy is
measured on the first (clean) split.

Evaluation callbacks feed [0, 1] images through :meth:`RobustClassifier.forward_normalized` (normalisation happens
inside), so corrupted images never need to know the dataset statistics.

Checkpoints are self-describing when the net is given as a spec (``net={"model_name": "resnet8_cifar",
"num_classes": 10, ...}``, what ``robust-train`` passes for ``timm.create_model`` nets): the spec, mean/std and the
other plain arguments are the checkpoint's hyper-parameters, so ``RobustClassifier.load_from_checkpoint(path)`` works
alone, with torch's default ``weights_only=True``. Optimizer/scheduler partials, augmentation and loss modules are
not stored (they are training-time objects; pass them again to resume training outside ``robust-train``). The run's
composed config travels in the checkpoint too, as YAML text (:attr:`RobustClassifier.run_config`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["CHECKPOINT_KEY", "RobustClassifier", "net_spec_from_config"]

#: key of robust_train's own entry in a checkpoint: ``{"version": ..., "config": <composed run config as YAML>}``
CHECKPOINT_KEY = "robust_train"

# keys of a net spec that only matter when building from scratch (weights files); a checkpoint holds the weights
_BUILD_ONLY_KEYS = ("checkpoint_path", "pretrained_cfg_overlay", "cache_dir")


def _plain(value: Any) -> Any:
    """OmegaConf containers (and tuples) -> plain dicts/lists, so nothing but builtins is pickled in checkpoints."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def net_spec_from_config(node: Any) -> dict[str, Any] | None:
    """The net spec (``{"model_name": ..., **kwargs}``) of a ``timm.create_model`` net config, else ``None``.

    Example:
        >>> net_spec_from_config({"_target_": "timm.create_model", "model_name": "resnet8_cifar", "num_classes": 3})
        {'model_name': 'resnet8_cifar', 'num_classes': 3}
    """
    node = _plain(node)
    if not isinstance(node, dict) or node.get("_target_") not in (
        "timm.create_model",
        "robust_train.models.create_model",
    ):
        return None
    return {k: v for k, v in node.items() if k != "_target_"}


def _build_net(spec: Mapping[str, Any]) -> nn.Module:
    from . import create_model  # the package registers the CIFAR nets with timm

    spec = dict(spec)
    if not isinstance(spec.get("model_name"), str):
        raise ValueError(f"net spec: expected a mapping with a string 'model_name' and timm kwargs, got {spec!r}")
    return create_model(spec.pop("model_name"), **spec)


def _accepts(fn: Callable, name: str, var_keyword: bool = True) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (or any keyword, through ``**kwargs``, when ``var_keyword``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if name in params:
        return True
    return var_keyword and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class RobustClassifier(LightningModule):
    """Image classifier trained with on-device augmentation and a pluggable loss.

    Args:
        net: the network, mapping normalised images (B, C, H, W) to logits (B, num_classes): a module, or a spec
            ``{"model_name": <timm name>, **timm.create_model kwargs}`` built with
            :func:`robust_train.models.create_model` and stored in checkpoints (see the module docstring).
        optimizer: partial optimizer factory, called as ``optimizer(params=...)``.
        scheduler: optional partial LR-scheduler factory, called as ``scheduler(optimizer=...)``. ``OneCycleLR``'s
            ``total_steps`` and ``CosineAnnealingLR``'s ``T_max`` are filled in from the trainer when left unset.
        scheduler_interval: ``"step"`` or ``"epoch"``: when the scheduler steps.
        scheduler_monitor: metric monitored by schedulers that need one (``ReduceLROnPlateau``).
        train_augment: on-device training augmentation (see the module docstring) or ``None``.
        loss: the training loss (see the module docstring); default cross-entropy.
        mean: per-channel mean of [0, 1] images for normalisation.
        std: per-channel standard deviation of [0, 1] images.
        num_classes: number of classes (default: taken from ``net.num_classes``).
        compile: run ``torch.compile`` on ``net`` in ``setup("fit")``.
        channels_last: keep images and the net in channels-last memory format (faster convolutions on CPU/GPU).

    Example:
        >>> import timm, robust_train.models
        >>> m = RobustClassifier(timm.create_model("resnet8_cifar", num_classes=10), mean=[.5] * 3, std=[.25] * 3)
        >>> m.forward_normalized(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        net: nn.Module | Mapping[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        train_augment: nn.Module | None = None,
        loss: nn.Module | None = None,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        num_classes: int | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        mean, std = [float(v) for v in _plain(mean)], [float(v) for v in _plain(std)]
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {list(mean)} and {list(std)}")
        if isinstance(net, nn.Module):
            module, ignore = net, ["net"]
        elif isinstance(net, Mapping):
            spec = _plain(net)
            module, ignore = _build_net(spec), []
            # rebinding the argument is what save_hyperparameters stores: the spec without build-only keys
            net = {k: v for k, v in spec.items() if k not in _BUILD_ONLY_KEYS} | {"pretrained": False}
        else:
            raise ValueError(
                f"net: expected an nn.Module or a spec {{'model_name': ..., **timm kwargs}}, got {net!r} (a checkpoint "
                "saved with a net module instead of a spec does not describe its net: pass net=... to "
                "load_from_checkpoint)"
            )
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.save_hyperparameters(logger=False, ignore=[*ignore, "optimizer", "scheduler", "train_augment", "loss"])
        #: the composed config of the run that built this model (YAML text), saved in and restored from checkpoints
        self.run_config: str | None = None
        self.net = module
        net = module
        self.train_augment = train_augment
        self.loss = loss if loss is not None else nn.CrossEntropyLoss()
        self._loss_takes_splits = _accepts(self.loss.forward, "num_splits")
        fwd = getattr(train_augment, "forward", None)
        self._augment_takes_y = fwd is not None and _accepts(fwd, "y")
        self._augment_takes_model = fwd is not None and _accepts(fwd, "model")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        num_classes = num_classes or getattr(net, "num_classes", None)
        if not num_classes:
            raise ValueError("num_classes is not given and the net has no num_classes attribute")
        self.num_classes = int(num_classes)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.val_acc_best = MaxMetric()
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    # ---------------------------------------------------------------------------------------------------- forward
    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel, for ``x`` float in [0, 1] of shape (B, C, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected images of shape (B, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_normalized(self, x: Tensor) -> Tensor:
        """Logits for [0, 1] images: normalise on the device, then run the net.

        Args:
            x: images, shape (B, C, H, W), float in [0, 1] (uint8 is converted).

        Returns:
            Logits, shape (B, num_classes).
        """
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        x = self.normalize(x)
        if self.hparams.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_normalized`: takes [0, 1] images (B, C, H, W), returns logits (B, num_classes)."""
        return self.forward_normalized(x)

    # ---------------------------------------------------------------------------------------- batch preparation
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: uint8 -> float [0, 1]; during training, apply ``train_augment`` and concatenate views."""
        x, y, *rest = batch
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        trainer = self._trainer
        if self.train_augment is not None and trainer is not None and trainer.training:
            kwargs: dict[str, Any] = {}
            if self._augment_takes_y:
                kwargs["y"] = y
            if self._augment_takes_model:
                kwargs["model"] = self.forward_normalized
            out = self.train_augment(x, **kwargs)
            x = torch.cat(list(out), dim=0) if isinstance(out, (tuple, list)) else out
        return (x, y, *rest)

    # ------------------------------------------------------------------------------------------------------ steps
    def compute_loss(self, logits: Tensor, y: Tensor, num_splits: int) -> Tensor:
        """Apply the loss following the contract in the module docstring."""
        if self._loss_takes_splits:
            return self.loss(logits, y, num_splits=num_splits)
        return self.loss(logits, y.repeat(num_splits) if num_splits > 1 else y)

    def model_step(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        """Shared step: returns ``(loss, preds of the clean split (B,), targets (B,))``."""
        x, y = batch[0], batch[1]
        if x.dtype == torch.uint8:  # batches fed without on_after_batch_transfer (manual calls)
            x = x.float().div_(255)
        if x.shape[0] % y.shape[0] != 0:
            raise ValueError(f"augmented batch of {x.shape[0]} is not a multiple of the {y.shape[0]} labels")
        num_splits = x.shape[0] // y.shape[0]
        logits = self.forward_normalized(x)
        loss = self.compute_loss(logits, y, num_splits)
        preds = logits[: y.shape[0]].argmax(dim=1)
        return loss, preds, y

    def on_train_start(self) -> None:
        """Reset validation metrics so the sanity check does not leak into ``val/acc_best``."""
        self.val_loss.reset()
        self.val_acc.reset()
        self.val_acc_best.reset()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One optimisation step; logs ``train/loss`` and ``train/acc``."""
        loss, preds, targets = self.model_step(batch)
        self.train_loss(loss)
        self.train_acc(preds, targets)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Logs ``val/loss`` and ``val/acc``."""
        loss, preds, targets = self.model_step(batch)
        self.val_loss(loss)
        self.val_acc(preds, targets)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        """Track and log ``val/acc_best``."""
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Logs ``test/loss`` and ``test/acc``."""
        loss, preds, targets = self.model_step(batch)
        self.test_loss(loss)
        self.test_acc(preds, targets)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Logits for a batch ``(x, ...)``."""
        return self.forward_normalized(batch[0])

    # ------------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the net's weights under ``net.*`` even when compiled, and the run's config (portable checkpoints)."""
        from .. import __version__

        sd = checkpoint.get("state_dict")
        if sd is not None:
            checkpoint["state_dict"] = {k.replace("net._orig_mod.", "net.", 1): v for k, v in sd.items()}
        checkpoint[CHECKPOINT_KEY] = {"version": __version__, "config": self.run_config}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Map ``net.*`` keys onto a compiled net (and compiled keys onto a plain one); restore :attr:`run_config`."""
        entry = checkpoint.get(CHECKPOINT_KEY)
        if isinstance(entry, dict) and entry.get("config") and self.run_config is None:
            self.run_config = entry["config"]
        sd = checkpoint.get("state_dict")
        if sd is None:
            return
        sd = {k.replace("net._orig_mod.", "net.", 1): v for k, v in sd.items()}
        if hasattr(self.net, "_orig_mod"):
            sd = {("net._orig_mod." + k[4:] if k.startswith("net.") else k): v for k, v in sd.items()}
        checkpoint["state_dict"] = sd

    # ---------------------------------------------------------------------------------------------------- set-up
    def setup(self, stage: str) -> None:
        """Compile the net for fitting when ``compile=True``."""
        if self.hparams.compile and stage == "fit":
            self.net = torch.compile(self.net)

    def _fill_scheduler_args(self, factory: Callable[..., Any]) -> dict[str, Any]:
        given = set(getattr(factory, "keywords", {}) or {})
        target = getattr(factory, "func", factory)
        extra: dict[str, Any] = {}
        steps = self.hparams.scheduler_interval == "step"
        if _accepts(target, "total_steps", var_keyword=False) and "total_steps" not in given and "epochs" not in given:
            extra["total_steps"] = int(self.trainer.estimated_stepping_batches)
        if target is torch.optim.lr_scheduler.CosineAnnealingLR and "T_max" not in given:
            extra["T_max"] = int(self.trainer.estimated_stepping_batches) if steps else int(self.trainer.max_epochs)
        return extra

    def configure_optimizers(self) -> Any:
        """Build the optimizer (and scheduler) from the partials."""
        if self.optimizer_factory is None:
            raise ValueError("RobustClassifier needs an optimizer partial to train (model.optimizer)")
        optimizer = self.optimizer_factory(params=self.trainer.model.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer, **self._fill_scheduler_args(self.scheduler_factory))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.hparams.scheduler_monitor,
                "interval": self.hparams.scheduler_interval,
                "frequency": 1,
            },
        }
