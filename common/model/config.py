"""Every architectural choice of the pose MetaFormer in one validated dataclass, and its named presets.

- `ModelConfig`: frames, joints, width, depth, the token mixer of each stream, the temporal pooling schedule,
  causality (``causal``: every temporal mixer sees only the current and earlier frames), norms, layer scale,
  dropout / stochastic depth and the weight initialisation. Bad values raise `UserError` naming the field.
  The defaults are the project's defaults for a new model (the command line takes them from here).
- `PRESETS` / `apply_preset`: ``mixste`` (attention + attention: numerically the official MixSTE), ``poolformer``
  (pooling in both streams, the seed's literal design) and ``default`` (learned spatial fc mixer + temporal pooling,
  the best measured combination).

The names of the mixers and of the temporal pooling schedules come from `common.model.mixers` (its registry is the one
list of them); the weight initialisations are named here (`WEIGHT_INITS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from common.core.errors import UserError
from common.geometry.skeleton import H36M_17_PARENTS
from common.model.mixers import SPATIAL, TEMPORAL, TEMPORAL_POOL_SCHEDULES, mixer_names

SPATIAL_MIXERS = mixer_names(SPATIAL)
TEMPORAL_MIXERS = mixer_names(TEMPORAL)
WEIGHT_INITS = ("trunc_normal", "torch_default")

# Named presets: the fields each one sets (anything else keeps the ModelConfig default). The "default" preset is also
# what ModelConfig() gives; change the project's default model HERE, in one place.
PRESETS: dict[str, dict] = {
    "mixste": {
        "spatial_mixer": "attention", "temporal_mixer": "attention", "layer_scale_init": None,
        "shared_stream_norms": True, "norm_eps": 1e-6, "head_norm_eps": 1e-5, "weight_init": "torch_default",
    },
    "poolformer": {
        "spatial_mixer": "pool", "temporal_mixer": "pool", "pool_size": 3, "temporal_pool_schedule": "fixed",
        "layer_scale_init": 1e-5, "shared_stream_norms": False, "weight_init": "trunc_normal",
    },
    "default": {
        "spatial_mixer": "fc", "temporal_mixer": "pool", "pool_size": 3, "temporal_pool_schedule": "fixed",
        "layer_scale_init": None, "shared_stream_norms": True, "weight_init": "trunc_normal",
    },
}
_DEFAULT = PRESETS["default"]
_POSITIVE_INTEGERS = ("num_frames", "num_joints", "in_chans", "out_chans", "embed_dim", "depth", "num_heads")
_CHOICES = {
    "spatial_mixer": SPATIAL_MIXERS,
    "temporal_mixer": TEMPORAL_MIXERS,
    "temporal_pool_schedule": TEMPORAL_POOL_SCHEDULES,
    "weight_init": WEIGHT_INITS,
}


class ModelConfigError(UserError):
    """A bad `ModelConfig` value; ``field``, ``value`` and ``expected`` let a command line name its own flag."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        super().__init__(f"model config {field}: expected {expected}, got {value!r}")
        self.field, self.value, self.expected = field, value, expected


@dataclass
class ModelConfig:
    """Every architectural choice of `PoseMetaFormer` (validated on construction; bad values raise `UserError`)."""

    num_frames: int = 243
    num_joints: int = 17
    in_chans: int = 2
    out_chans: int = 3
    embed_dim: int = 512
    depth: int = 8
    mlp_ratio: float = 2.0
    spatial_mixer: str = _DEFAULT["spatial_mixer"]  # see SPATIAL_MIXERS
    temporal_mixer: str = _DEFAULT["temporal_mixer"]  # see TEMPORAL_MIXERS
    pool_size: int = _DEFAULT["pool_size"]  # odd window of the pooling mixers (first temporal layer for widening)
    temporal_pool_schedule: str = _DEFAULT["temporal_pool_schedule"]  # fixed | growing | dilated
    # Causal: the temporal mixers see only the current and earlier frames (live lifting, common/evaluation/streaming).
    # No parameter depends on it; a checkpoint without the key (older ones, official MixSTE) is non-causal.
    causal: bool = False
    num_heads: int = 8
    qkv_bias: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    # Stochastic depth is off for new models: with 0.1 the eval-mode validation error of small models rose while
    # training (synthetic, -f 27 -cs 32 -dep 2, 4 epochs: 255 -> 316 mm) whereas 0 gave 213 -> 151 mm.
    drop_path_rate: float = 0.0
    layer_scale_init: float | None = _DEFAULT["layer_scale_init"]  # None: no layer scale (MixSTE)
    norm_eps: float = 1e-6  # LayerNorm eps inside blocks and of the shared stream norms
    head_norm_eps: float = 1e-5
    shared_stream_norms: bool = _DEFAULT["shared_stream_norms"]  # MixSTE's one LayerNorm after every S / T block
    weight_init: str = _DEFAULT["weight_init"]  # trunc_normal (timm / PoolFormer) | torch_default (MixSTE)
    skeleton_parents: tuple[int, ...] = field(default=H36M_17_PARENTS)  # for the graph mixer

    def __post_init__(self) -> None:
        self.skeleton_parents = tuple(int(p) for p in self.skeleton_parents)
        self.validate()

    def mixer(self, axis: str) -> str:
        """The token mixer name of the ``axis`` stream (``spatial`` or ``temporal``)."""
        return self.spatial_mixer if axis == SPATIAL else self.temporal_mixer

    def validate(self) -> None:
        """Raise `UserError` naming the first offending field."""

        def bad(name: str, expected: str) -> ModelConfigError:
            return ModelConfigError(name, getattr(self, name), expected)

        for name in _POSITIVE_INTEGERS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "a positive integer")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                hint = " (graph and fc mix joints: spatial stream only)" if (
                    name == "temporal_mixer" and self.temporal_mixer in SPATIAL_MIXERS) else ""
                raise bad(name, f"one of {', '.join(choices)}{hint}")
        if not isinstance(self.causal, bool):
            raise bad("causal", "True or False")
        size = self.pool_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size % 2 == 0:
            raise bad("pool_size", "an odd integer >= 3")
        if "attention" in (self.spatial_mixer, self.temporal_mixer) and self.embed_dim % self.num_heads:
            raise bad("embed_dim", f"a multiple of num_heads={self.num_heads} for attention")
        if not self.mlp_ratio > 0:
            raise bad("mlp_ratio", "a positive number")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, "a probability in [0, 1)")
        if self.layer_scale_init is not None and not self.layer_scale_init > 0:
            raise bad("layer_scale_init", "a positive number or None")
        for name in ("norm_eps", "head_norm_eps"):
            if not getattr(self, name) > 0:
                raise bad(name, "a positive number")
        parents = self.skeleton_parents
        if len(parents) != self.num_joints or any(p < -1 or p >= len(parents) or p == i for i, p in enumerate(parents)):
            raise bad("skeleton_parents", f"{self.num_joints} parent indices (-1 for the root)")

    def to_dict(self) -> dict:
        """Plain-Python dict (JSON friendly) of every field."""
        data = dataclasses.asdict(self)
        data["skeleton_parents"] = list(self.skeleton_parents)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys raise `UserError` (a checkpoint from another model family)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


def apply_preset(name: str, overrides: dict | None = None) -> ModelConfig:
    """Config of preset ``name`` with ``overrides`` on top (individual flags win; ``None`` values mean "not given")."""
    if name not in PRESETS:
        raise UserError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    values = dict(PRESETS[name])
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return ModelConfig.from_dict(values)
