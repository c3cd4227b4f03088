"""Models by name: shipped checkpoints, torchvision architectures, and safe user uploads.

Nothing is downloaded and nothing untrusted is unpickled: checkpoints are safetensors files with a
JSON sidecar, torchvision weights are used only when already in the torch hub cache, and uploads
are read with safetensors or ``torch.load(weights_only=True)``.
Every call builds a fresh model, so a caller may cache it (the app does, with ``st.cache_resource``).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .device import resolve_device
from .models import LeNetLike, SmallResNet, ViT, ViTConfig

__all__ = [
    "CHECKPOINT_DIR",
    "MAX_WEIGHTS_BYTES",
    "TORCHVISION_MODELS",
    "build_model",
    "checkpoint_metadata",
    "checkpoint_names",
    "list_models",
    "load_model",
    "load_uploaded",
    "model_family",
    "torchvision_weights_path",
    "upload_architectures",
]

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
TORCHVISION_MODELS = ("alexnet", "vgg16", "resnet18", "vit_b_16")
MAX_WEIGHTS_BYTES = 600 * 2**20  # fits vgg16 (528 MiB); the app server may cap uploads lower
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]
_RANDOM_INIT_SEED = 0
_META_KEYS = (
    "name",
    "architecture",
    "family",
    "config",
    "dataset",
    "input_size",
    "mean",
    "std",
    "class_names",
    "test_accuracy",
    "pretrained",
    "notice",
    "source",
)


def build_model(architecture: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Return a freshly initialised model of one of our architectures ("lenet", "resnet", "vit")."""
    config = dict(config or {})
    if architecture == "lenet":
        return LeNetLike(**config)
    if architecture == "resnet":
        return SmallResNet(**config)
    if architecture == "vit":
        return ViT(ViTConfig(**config))
    raise ValueError(f"Unknown architecture {architecture!r}; expected lenet, resnet or vit.")


def checkpoint_names() -> list[str]:
    """Return the names of the checkpoints shipped in ``checkpoints/`` (a .json beside a .safetensors)."""
    return sorted(
        p.stem for p in CHECKPOINT_DIR.glob("*.json") if p.with_suffix(".safetensors").is_file()
    )


def model_family(name: str) -> str:
    """Return "vit" or "cnn" for a model name of ``list_models()``, without loading any weights."""
    if name in TORCHVISION_MODELS:
        return "vit" if name.startswith("vit_") else "cnn"
    return "vit" if checkpoint_metadata(name)["architecture"] == "vit" else "cnn"


def list_models(family: str | None = None) -> list[str]:
    """Return every loadable model name: shipped checkpoints first, then torchvision architectures.

    ``family`` ("cnn" or "vit") keeps only the models of that family.
    """
    names = [*checkpoint_names(), *TORCHVISION_MODELS]
    if family is None:
        return names
    if family not in ("cnn", "vit"):
        raise ValueError(f"family must be 'cnn' or 'vit', not {family!r}")
    return [n for n in names if model_family(n) == family]


def upload_architectures() -> list[str]:
    """Return the architectures an uploaded state_dict may be for (checkpoint names and torchvision)."""
    return list_models()


def _complete_meta(meta: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    for key in _META_KEYS:
        meta.setdefault(key, None)
    meta["family"] = (
        "vit" if isinstance(model, ViT) or meta.get("architecture") == "vit_b_16" else "cnn"
    )
    if isinstance(model, ViT):
        meta["patch_size"] = model.patch_size
        meta["num_prefix_tokens"] = model.num_prefix_tokens
        meta["grid_size"] = list(model.grid_size)
    return meta


def checkpoint_metadata(name: str) -> dict[str, Any]:
    """Return the JSON sidecar of shipped checkpoint ``name`` without loading its weights."""
    if name not in checkpoint_names():
        raise ValueError(f"No shipped checkpoint {name!r}; choose one of {checkpoint_names()}.")
    with open(CHECKPOINT_DIR / f"{name}.json", encoding="utf-8") as fh:
        return json.load(fh)


def _load_checkpoint(name: str) -> tuple[nn.Module, dict[str, Any]]:
    from safetensors.torch import load_file

    meta = checkpoint_metadata(name)
    model = build_model(meta["architecture"], meta.get("config"))
    state = load_file(str(CHECKPOINT_DIR / f"{name}.safetensors"))
    model.load_state_dict(state)
    meta.update(name=name, source="checkpoint", pretrained=True, notice=None)
    return model, _complete_meta(meta, model)


def torchvision_weights_path(name: str) -> Path:
    """Return where torch hub caches the default ImageNet weights of torchvision model ``name``.

    Follows ``TORCH_HOME`` (``torch.hub.get_dir()/checkpoints/<file of the weights URL>``).
    """
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def _torchvision_meta(name: str, *, notice: str | None) -> dict[str, Any]:
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT
    meta: dict[str, Any] = {
        "name": name,
        "architecture": name,
        "family": "vit" if name.startswith("vit") else "cnn",
        "config": {"num_classes": 1000, "weights": str(weights)},
        "dataset": "imagenet",
        "input_size": [3, 224, 224],
        "mean": list(_IMAGENET_MEAN),
        "std": list(_IMAGENET_STD),
        # the class names ship inside torchvision, so they are available offline
        "class_names": list(weights.meta["categories"]),
        "test_accuracy": (
            weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100 if notice is None else None
        ),
        "pretrained": notice is None,
        "notice": notice,
        "source": "torchvision",
    }
    if name == "vit_b_16":
        meta.update(patch_size=16, num_prefix_tokens=1, grid_size=[14, 14])
    return meta


def _random_torchvision(name: str) -> nn.Module:
    from torchvision.models import get_model

    # Random but reproducible, without disturbing the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_INIT_SEED)
        return get_model(name, weights=None)


def _load_torchvision(name: str) -> tuple[nn.Module, dict[str, Any]]:
    path = torchvision_weights_path(name)
    model = _random_torchvision(name)
    notice = None
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # a truncated or foreign file in the cache
            model = _random_torchvision(name)
            notice = (
                f"The cached weights file {path} could not be read ({type(err).__name__}); "
                f"this model is randomly initialised (seed {_RANDOM_INIT_SEED}), so its "
                "predictions, filters and attributions are meaningless."
            )
    else:
        notice = (
            f"The ImageNet weights of {name} are not available offline (expected {path}); "
            f"this model is randomly initialised (seed {_RANDOM_INIT_SEED}), so its predictions, "
            "filters and attributions are meaningless. Put the file there (or set TORCH_HOME) "
            "to use the trained weights."
        )
    return model, _torchvision_meta(name, notice=notice)


def load_model(name: str, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """Return (a new model in eval mode on ``device``, its metadata dict) for a name from ``list_models()``.

    Raises ``ValueError`` for an unknown name or an absent device.
    """
    dev = resolve_device(device)
    if name in checkpoint_names():
        model, meta = _load_checkpoint(name)
    elif name in TORCHVISION_MODELS:
        model, meta = _load_torchvision(name)
    else:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(list_models())}.")
    return model.to(dev).eval(), meta


def _template(architecture: str) -> tuple[nn.Module, dict[str, Any]]:
    """Return a fresh model of ``architecture`` and its metadata, to receive uploaded weights."""
    if architecture in checkpoint_names():
        meta = checkpoint_metadata(architecture)
        model = build_model(meta["architecture"], meta.get("config"))
        meta = {k: meta[k] for k in _META_KEYS if k in meta}
        return model, _complete_meta(meta, model)
    if architecture in TORCHVISION_MODELS:
        return _random_torchvision(architecture), _torchvision_meta(architecture, notice=None)
    raise ValueError(
        f"Unknown architecture {architecture!r} for an upload; choose from "
        f"{', '.join(upload_architectures())}."
    )


def _unpickling_reason(err: Exception, data: bytes = b"") -> str:
    """Return why torch's ``weights_only`` loader refused the file ``data``, in a user's words.

    Never torch's advice to re-run with ``weights_only=False`` (unsafe for an untrusted upload).
    """
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        return (
            f"it holds a pickled Python object ({unsafe.group(1)}), which could run code when "
            "loaded: a whole model saved with torch.save(model) is such a file"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("Trying to load unsupported", "Unsupported")) and "operand" not in line:
            return line[:300]
    if data[:4] == b"PK\x03\x04":  # torch.save's zip format, which did not read
        return "the file is damaged or truncated: its zip archive is incomplete or corrupt"
    if data[:1] != b"\x80":  # neither a zip archive nor a pickle (protocol 2 and later)
        return (
            "it is neither a safetensors file nor a PyTorch checkpoint (a zip archive or a pickle)"
        )
    advice = ("Weights only load failed", "Please", "Check the", "(1)", "(2)", "Re-running")
    for line in lines:
        if not line.startswith(advice) and "weights_only" not in line:
            return line[:300]
    return type(err).__name__


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, compile


def _strip_wrapper_prefix(state: dict, expected: dict) -> tuple[dict, str | None]:
    """Return ``state`` without a wrapper's key prefix when every key has it and the model's
    keys do not (weights saved from ``nn.DataParallel`` or ``torch.compile``), and the prefix."""
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state) and not any(
            k.startswith(prefix) for k in expected
        ):
            return {k[len(prefix) :]: v for k, v in state.items()}, prefix
    return state, None


def _read_state_dict(file_bytes: bytes) -> dict[str, torch.Tensor]:
    """Return the tensors of a safetensors file or of a plain ``.pt``/``.pth`` state_dict.

    Pickles are read only by torch's restricted ``weights_only`` unpickler, which refuses
    anything but tensors and plain containers, so a file cannot run code on load.
    """
    if len(file_bytes) > 8 and file_bytes[8:9] == b"{":  # u64 header length, then JSON
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        try:
            return load_safetensors(file_bytes)
        except (SafetensorError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"The file looks like safetensors but could not be read: {err}"
            ) from None
    try:
        obj = torch.load(io.BytesIO(file_bytes), map_location="cpu", weights_only=True)
    except Exception as err:  # the restricted unpickler raises several types
        raise ValueError(
            "Refused: the file is not a plain state_dict of tensors that can be read safely "
            f"({_unpickling_reason(err, file_bytes)}). Save the weights with "
            "torch.save(model.state_dict(), path) or as .safetensors."
        ) from None
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj:
        raise ValueError("The file does not hold a state_dict (a mapping of names to tensors).")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"Entries that are not named tensors: {', '.join(bad[:10])}")
    return obj


def _list(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_uploaded(file_bytes: bytes, architecture: str) -> tuple[nn.Module, dict]:
    """Return (model in eval mode on the CPU, metadata) from uploaded weights for ``architecture``.

    ``file_bytes`` is a ``.safetensors`` file or a ``.pt``/``.pth`` state_dict; ``architecture``
    is one of ``upload_architectures()``. ``meta["test_accuracy"]`` is measured on the test split
    of the architecture's dataset when the app ships it (the digits), else None. Raises
    ``ValueError`` naming every missing, unexpected and mis-shaped key, and every tensor of whole
    numbers where the model's are floating point, for files over
    ``MAX_WEIGHTS_BYTES``, non-finite weights, or unsafe pickles.
    """
    if not file_bytes:
        raise ValueError("The uploaded file is empty.")
    if len(file_bytes) > MAX_WEIGHTS_BYTES:
        raise ValueError(
            f"The file is {len(file_bytes) / 2**20:.0f} MiB; the limit is "
            f"{MAX_WEIGHTS_BYTES / 2**20:.0f} MiB."
        )
    model, meta = _template(architecture)
    expected = model.state_dict()
    state, prefix = _strip_wrapper_prefix(_read_state_dict(file_bytes), expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    # load_state_dict would cast whole numbers into float weights without a word
    not_float = [
        f"{k} ({str(state[k].dtype).removeprefix('torch.')})"
        for k, v in expected.items()
        if k in state and v.is_floating_point() and not state[k].is_floating_point()
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_list(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys ({len(misshaped)}): {_list(misshaped)}")
    if not_float:
        problems.append(f"whole numbers where weights are decimals: {_list(not_float)}")
    if problems:
        raise ValueError(
            f"The weights do not fit the {architecture} architecture: " + "; ".join(problems) + "."
        )
    nonfinite = [
        k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if nonfinite:
        raise ValueError(f"The weights contain NaN or infinite values in: {_list(nonfinite)}.")
    model.load_state_dict(state)
    model.eval()
    meta.update(
        name=f"upload ({architecture})",
        source="upload",
        pretrained=True,
        notice=(
            f"The weights' names began with {prefix!r} (saved from a wrapped model, e.g. "
            "nn.DataParallel or torch.compile); it was removed to match the architecture."
            if prefix
            else None
        ),
        test_accuracy=_bundled_test_accuracy(model, meta),
    )
    return model, meta


_BUNDLED_TEST_SETS = ("digits",)  # shipped with an installed package: measured on every upload


def _bundled_test_accuracy(model: nn.Module, meta: dict) -> float | None:
    """Return ``model``'s accuracy on the test split of its dataset when the app ships that
    data (the digits: the split the shipped checkpoints were scored on), else None."""
    if meta.get("dataset") not in _BUNDLED_TEST_SETS:
        return None
    from .data import load_dataset_for_model
    from .train import evaluate

    images, labels, _names = load_dataset_for_model(meta["dataset"], meta, "test")
    return evaluate(model, images, labels)
