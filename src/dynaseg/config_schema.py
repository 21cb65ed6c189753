"""Typed schemas of the config values users edit, checked once before anything is built.

Hydra composes ``conf/`` into one config; before an entry point (``src/train.py``,
``src/eval.py``, ``src/predict.py``) builds anything from it, :func:`validate_config` checks it
against the pydantic models below. Every value of the wrong type or out of range becomes one line
``error: <key>=<value>: expected <what>`` (exit code 1, no traceback), e.g.
``error: model.optimizer.lr=-1: expected a learning rate > 0``, instead of a traceback from
torch, Lightning or albumentations, possibly wrapped in Hydra's "Error in call to target".

This module is the one place where these types and ranges are declared: the datamodule, the
inference settings and the training module check their own arguments through it too
(:func:`check_values`: library use without an entry point), and docs/configs.md lists them
(:func:`schema_markdown`, written by ``scripts/config_docs.py``, tested to match). Checks that
relate several keys or need the disk (a slide window needs a crop and a stride, a checkpoint
exists, a directory is writable) stay where they are made.

Why pydantic and not Hydra's structured configs: ranges (``lr > 0``), unions (an interval in
steps or a fraction of an epoch) and the message per key come with the type; the YAML files stay
as they are (a structured config is a schema entry in the defaults list of every option of a
group, and its type errors arise while Hydra composes, as Hydra's multi-line message, before an
entry point can name the key); and pydantic 2 is installed already (albumentations requires it).
Models are strict (``"8"`` is not an integer, ``true`` is not a number) and allow keys they do
not know: which keys exist is Hydra's business (``Could not override 'trainer.max_stepz'``).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo

from dynaseg.errors import ArgumentError, ConfigError

# The choices of keys whose code lives elsewhere; those modules import them from here.
ON_BAD_SAMPLE = ("error", "skip")  # data.on_bad_sample (dynaseg.data.preflight)
INFERENCE_MODES = ("whole", "slide")  # model.inference.mode (dynaseg.models.inference)
SCHEDULES = ("poly", "step")  # model.scheduler.name (dynaseg.training.module)
TEST_CHECKPOINTS = ("last", "best")  # test_checkpoint (dynaseg.run.recipes)

Number = StrictInt | StrictFloat  # an int is a fine float (lr=1); a bool or a string is not


def _expect(text: str) -> Any:
    return Field(description=text)


def _check(ok: typing.Callable[[Any], bool]) -> AfterValidator:
    def check(value: Any) -> Any:
        if not ok(value):
            raise ValueError("out of range")  # the message is the field's description
        return value

    return AfterValidator(check)


def _integer(minimum: int, note: str = "") -> Any:
    """An integer ≥ ``minimum`` (``note`` says what it counts)."""
    text = f"an integer ≥ {minimum}" + (f" ({note})" if note else "")
    return Annotated[StrictInt, Field(ge=minimum, description=text)]


# two integers ≥ 1: a size [h, w] or [long, short]
Pair = Annotated[list[Annotated[StrictInt, Field(ge=1)]], Field(min_length=2, max_length=2)]


def _choice(choices: tuple[str, ...], note: str = "") -> Any:
    text = f"one of {', '.join(choices)}" + (f" ({note})" if note else "")
    return Annotated[Literal[choices], Field(description=text)]  # type: ignore[valid-type]


# ---------------------------------------------------------------------------------------- data
class DatasetSchema(BaseModel):
    """``data.dataset.*`` of the generated datasets (conf/data/synthetic*.yaml; the scene cache,
    dynaseg.data.scene_cache); the other datasets' arguments are checked where they are used."""

    model_config = ConfigDict(strict=True, extra="allow")

    memory_cache_mb: Annotated[
        Number,
        Field(
            ge=0, description="megabytes ≥ 0 of scenes kept in memory per loader worker (0: none)"
        ),
    ] = None
    cache_dir: Annotated[
        StrictStr | None, _expect("a directory path for the on-disk scene cache, or null")
    ] = None


class DataSchema(BaseModel):
    """``data.*`` (conf/data/, conf/data/pipeline/mmseg.yaml; dynaseg.data.datamodule)."""

    model_config = ConfigDict(strict=True, extra="allow")

    crop_size: Annotated[Pair, _expect("[h, w] of the training crop: two integers ≥ 1")] = None
    scale: Annotated[
        Pair, _expect("[long, short] sides of the training rescale: two integers ≥ 1")
    ] = None
    test_scale: Annotated[
        Pair | None,
        _expect("[long, short] sides of the evaluation resize (two integers ≥ 1) or null"),
    ] = None
    ratio_range: Annotated[
        list[Annotated[Number, Field(gt=0)]],
        Field(min_length=2, max_length=2),
        _check(lambda r: r[0] <= r[1]),
        Field(description="[low, high] of the random rescale: two numbers > 0, low ≤ high"),
    ] = None
    cat_max_ratio: Annotated[
        Number,
        Field(gt=0, le=1, description="a fraction in (0, 1] (largest share of one class per crop)"),
    ] = None
    mean: Annotated[
        list[Number], Field(min_length=3, max_length=3, description="three numbers (RGB)")
    ] = None
    std: Annotated[
        list[Annotated[Number, Field(gt=0)]],
        Field(min_length=3, max_length=3, description="three numbers > 0 (RGB)"),
    ] = None
    ignore_index: _integer(0, "the label value ignored by loss and metric") = None
    batch_size: _integer(1, "samples per batch") = None
    val_batch_size: _integer(1, "samples per batch") = None
    num_workers: _integer(0, "loader worker processes; 0 loads in the main process") = None
    photometric: Annotated[StrictBool, _expect("true or false")] = None
    pin_memory: Annotated[StrictBool, _expect("true or false")] = None
    preflight: Annotated[StrictBool, _expect("true or false")] = None
    on_bad_sample: _choice(ON_BAD_SAMPLE) = None
    preflight_cache_dir: Annotated[StrictStr | None, _expect("a directory path or null")] = None
    train_split: Annotated[StrictStr, _expect("a split name")] = None
    val_split: Annotated[StrictStr, _expect("a split name")] = None
    test_split: Annotated[StrictStr, _expect("a split name")] = None
    dataset: DatasetSchema | None = None


# --------------------------------------------------------------------------------------- model
class OptimizerSchema(BaseModel):
    """``model.optimizer`` (conf/model/recipe/): the torch optimizer's arguments."""

    model_config = ConfigDict(strict=True, extra="allow")

    lr: Annotated[Number, Field(gt=0, description="a learning rate > 0")] = None
    weight_decay: Annotated[Number, Field(ge=0, description="a weight decay ≥ 0")] = None
    momentum: Annotated[Number, Field(ge=0, lt=1, description="a momentum in [0, 1)")] = None
    nesterov: Annotated[StrictBool, _expect("true or false")] = None
    eps: Annotated[Number, Field(gt=0, description="a number > 0")] = None
    betas: Annotated[
        list[Annotated[Number, Field(ge=0, lt=1)]],
        Field(min_length=2, max_length=2, description="[beta1, beta2]: two numbers in [0, 1)"),
    ] = None


class SchedulerSchema(BaseModel):
    """``model.scheduler`` (conf/model/recipe/): poly or step decay per optimizer step."""

    model_config = ConfigDict(strict=True, extra="allow")

    name: _choice(SCHEDULES) = None
    power: Annotated[Number, Field(ge=0, description="a poly power ≥ 0")] = None
    min_lr: Annotated[Number, Field(ge=0, description="a learning rate ≥ 0 (the poly floor)")] = (
        None
    )
    gamma: Annotated[
        Number, Field(gt=0, le=1, description="a factor in (0, 1] (LR multiplier per milestone)")
    ] = None
    milestones: Annotated[
        list[Annotated[StrictInt, Field(ge=1)]],
        _expect("a list of optimizer steps ≥ 1"),
    ] = None
    milestone_epochs: Annotated[
        list[Annotated[Number, Field(gt=0)]], _expect("a list of epochs > 0")
    ] = None


class InferenceSchema(BaseModel):
    """``model.inference`` (and each ``test_variants.<name>``): null keeps the default (in
    src/eval.py and src/predict.py: the checkpoint's own setting)."""

    model_config = ConfigDict(strict=True, extra="allow")

    mode: Annotated[
        Literal[INFERENCE_MODES] | None, _expect(f"one of {', '.join(INFERENCE_MODES)} or null")
    ] = None
    crop_size: Annotated[
        Annotated[StrictInt, Field(ge=1)] | Pair | None, _expect("[h, w] of positive ints")
    ] = None
    stride: Annotated[
        Annotated[StrictInt, Field(ge=1)] | Pair | None, _expect("[h, w] of positive ints")
    ] = None
    scales: Annotated[
        list[Annotated[Number, Field(gt=0)]] | None,
        Field(min_length=1),
        _expect("a non-empty list of positive factors"),
    ] = None
    flip: Annotated[StrictBool | None, _expect("true or false")] = None
    align_corners: Annotated[StrictBool | None, _expect("true or false")] = None


class ModelSchema(BaseModel):
    """``model.*`` values of the recipe and the module; the network's own arguments
    (``model.net.*``) are checked by the heads and the backbone, which know their ranges."""

    model_config = ConfigDict(strict=True, extra="allow")

    optimizer: OptimizerSchema | None = None
    scheduler: SchedulerSchema | None = None
    inference: InferenceSchema | None = None
    aux_loss_weight: Annotated[Number, Field(ge=0, description="a loss weight ≥ 0")] = None
    lr_mult: Annotated[
        dict[StrictStr, Annotated[Number, Field(ge=0)]] | None,
        _expect("{parameter-name prefix: LR factor ≥ 0}"),
    ] = None
    freeze: Annotated[list[StrictStr] | None, _expect("a list of parameter-name prefixes")] = None
    layer_decay: Annotated[
        Annotated[Number, Field(gt=0, le=1)] | None,
        _expect("a factor in (0, 1] (the backbone's layer-wise LR decay) or null"),
    ] = None


# ------------------------------------------------------------------------------------- trainer
def _steps_or_unlimited(value: int) -> bool:
    return value == -1 or value >= 1


_TIME = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")  # Lightning's DD:HH:MM:SS
_FRACTION_OR_COUNT = "an integer ≥ 0 (batches) or a fraction in [0, 1]"


class TrainerSchema(BaseModel):
    """``trainer.*`` step and interval keys (conf/trainer/; Lightning's ``Trainer``)."""

    model_config = ConfigDict(strict=True, extra="allow")

    max_steps: Annotated[
        StrictInt,
        _check(_steps_or_unlimited),
        _expect("an integer ≥ 1 (optimizer steps), or -1 for no limit (then trainer.max_epochs)"),
    ] = None
    max_epochs: Annotated[
        StrictInt | None,
        _check(lambda v: v is None or _steps_or_unlimited(v)),
        _expect("an integer ≥ 1, -1 for no limit, or null"),
    ] = None
    check_val_every_n_epoch: Annotated[
        Annotated[StrictInt, Field(ge=1)] | None, _expect("an integer ≥ 1 or null")
    ] = None  # before val_check_interval, whose check reads it
    val_check_interval: Annotated[
        Annotated[StrictInt, Field(ge=1)]
        | Annotated[StrictFloat, Field(gt=0, le=1)]
        | Annotated[StrictStr, Field(pattern=_TIME.pattern)]
        | None,
        _expect(
            "an integer ≥ 1 (optimizer steps), a fraction in (0, 1] of an epoch (with "
            "trainer.check_val_every_n_epoch set), a time 'DD:HH:MM:SS' or null"
        ),
    ] = None
    log_every_n_steps: _integer(1, "optimizer steps") = None
    accumulate_grad_batches: _integer(1, "batches per optimizer step") = None
    num_sanity_val_steps: Annotated[
        StrictInt, Field(ge=-1, description="an integer ≥ 0, or -1 for the whole validation")
    ] = None
    gradient_clip_val: Annotated[
        Annotated[Number, Field(ge=0)] | None, _expect("a number ≥ 0 or null")
    ] = None
    limit_train_batches: Annotated[
        Annotated[StrictInt, Field(ge=0)] | Annotated[StrictFloat, Field(ge=0, le=1)] | None,
        _expect(_FRACTION_OR_COUNT),
    ] = None
    limit_val_batches: Annotated[
        Annotated[StrictInt, Field(ge=0)] | Annotated[StrictFloat, Field(ge=0, le=1)] | None,
        _expect(_FRACTION_OR_COUNT),
    ] = None
    limit_test_batches: Annotated[
        Annotated[StrictInt, Field(ge=0)] | Annotated[StrictFloat, Field(ge=0, le=1)] | None,
        _expect(_FRACTION_OR_COUNT),
    ] = None
    fast_dev_run: Annotated[
        StrictBool | Annotated[StrictInt, Field(ge=0)],
        _expect("true, false or an integer ≥ 0 (batches)"),
    ] = None
    num_nodes: _integer(1, "machines") = None

    @field_validator("val_check_interval")
    @classmethod
    def _fraction_needs_epochs(cls, value: Any, info: ValidationInfo) -> Any:
        # Lightning counts a fraction per epoch: without epoch-wise validation it refuses it
        if isinstance(value, float) and info.data.get("check_val_every_n_epoch") is None:
            raise ValueError("a fraction needs trainer.check_val_every_n_epoch")
        return value


# ------------------------------------------------------------------------------ other groups
class PathsSchema(BaseModel):
    """``paths.*`` (conf/paths/default.yaml); whether a directory can be created is checked when
    the run starts (dynaseg.run.directories.check_output_paths)."""

    model_config = ConfigDict(strict=True, extra="allow")

    root_dir: Annotated[StrictStr, _expect("a directory path")] = None
    data_dir: Annotated[StrictStr, _expect("a directory path")] = None
    log_dir: Annotated[StrictStr, _expect("a directory path")] = None
    output_dir: Annotated[StrictStr, _expect("a directory path")] = None


class FaultToleranceSchema(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    every_n_steps: Annotated[
        Annotated[StrictInt, Field(ge=0)] | None,
        _expect("an integer ≥ 0 (optimizer steps between last.ckpt writes; 0: off) or null"),
    ] = None


class FrozenFeatureCacheSchema(BaseModel):
    """``callbacks.frozen_feature_cache.*`` (dynaseg.training.feature_cache; +scale=mini)."""

    model_config = ConfigDict(strict=True, extra="allow")

    directory: Annotated[
        StrictStr, _expect("a directory path for the frozen backbone's feature cache")
    ] = None
    max_gb: Annotated[
        Number,
        Field(gt=0, description="gigabytes > 0 the cache may hold (least recently used go first)"),
    ] = None


class CallbacksSchema(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    fault_tolerance: FaultToleranceSchema | None = None
    frozen_feature_cache: FrozenFeatureCacheSchema | None = None


class SubmissionSchema(BaseModel):
    """``submission.*`` of ``src/predict.py`` (conf/server/; dynaseg.run.prediction): which
    server's files, and their archive. The format's name is checked against the servers where
    they are declared (``dynaseg.run.prediction.SUBMISSION_FORMATS``)."""

    model_config = ConfigDict(strict=True, extra="allow")

    format: Annotated[
        StrictStr | None,
        _expect("a test server's name (cityscapes, voc2012, ade20k) or null for viewable PNGs"),
    ] = None
    archive: Annotated[StrictStr, _expect("a .zip file path")] = None


class ExtrasSchema(BaseModel):
    """``extras.*`` (conf/extras/; dynaseg.run.recipes.start_run)."""

    model_config = ConfigDict(strict=True, extra="allow")

    print_config: Annotated[StrictBool, _expect("true or false")] = None
    cpu_memory_reuse: Annotated[
        StrictBool,
        _expect("true (keep freed CPU memory for the next step) or false (the C library's way)"),
    ] = None


class RunSchema(BaseModel):
    """The composed config of ``train``, ``eval`` and ``predict`` (each has some of these)."""

    model_config = ConfigDict(strict=True, extra="allow")

    seed: Annotated[StrictInt | None, _expect("an integer (the random seed) or null")] = None
    data: DataSchema | None = None
    model: ModelSchema | None = None
    trainer: TrainerSchema | None = None
    paths: PathsSchema | None = None
    callbacks: CallbacksSchema | None = None
    extras: ExtrasSchema | None = None
    test: Annotated[StrictBool, _expect("true or false")] = None
    test_checkpoint: _choice(
        TEST_CHECKPOINTS,
        "last = the weights at the end of fitting, best = the checkpoint best on val",
    ) = None
    test_variants: Annotated[
        dict[StrictStr, InferenceSchema] | None, _expect("{name: inference keys} or null")
    ] = None
    ckpt_path: Annotated[StrictStr | None, _expect("a checkpoint file path")] = None
    # the fine-tuning stage of a two-stage preset (conf/experiment/*_voc_trainval_ft.yaml)
    stage1_ckpt: Annotated[StrictStr, _expect("the first stage's checkpoint file path")] = None
    # src/predict.py
    inputs: Annotated[
        StrictStr | list[StrictStr], _expect("a folder, a glob, a .txt list or an image path")
    ] = None
    overlay: Annotated[StrictBool, _expect("true or false")] = None
    opacity: Annotated[Number, Field(ge=0, le=1, description="a weight in [0, 1]")] = None
    ids_file: Annotated[
        StrictStr | None, _expect("a file of image ids (stems), one a line, or null")
    ] = None
    submission: SubmissionSchema | None = None


# ----------------------------------------------------------------------------- checking
def _submodel(annotation: Any) -> tuple[str, Any] | None:
    """``("model", cls)`` if ``annotation`` is (an optional) schema model, ``("dict", cls)`` if
    it is a mapping from names to one, else ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, Annotated):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    if origin is dict:
        found = _submodel(typing.get_args(annotation)[1])
        if found is not None and found[0] == "model":
            return "dict", found[1]
    return None


def _schema_at(prefix: str) -> type[BaseModel]:
    schema: type[BaseModel] = RunSchema
    for part in [p for p in prefix.split(".") if p]:
        found = _submodel(schema.model_fields[part].annotation)
        assert found is not None and found[0] == "model", f"no schema at {prefix!r}"
        schema = found[1]
    return schema


def _field_of(schema: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str], FieldInfo]:
    """The key path and field that a pydantic error location points into (down to the value the
    user wrote: a list item or a union branch counts as its field)."""
    path: list[str] = []
    field: FieldInfo | None = None
    current: tuple[str, Any] | None = ("model", schema)
    parts = list(loc)
    while parts and current is not None:
        kind, model = current
        if kind == "dict":  # a user-chosen name, then that entry's fields
            path.append(str(parts.pop(0)))
            current = ("model", model)
            continue
        part = parts.pop(0)
        if not isinstance(part, str) or part not in model.model_fields:
            break
        field = model.model_fields[part]
        path.append(part)
        current = _submodel(field.annotation)
    assert field is not None, loc
    return path, field


def _value_at(values: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = values
    for part in path:
        value = value[part]
    return value


def check_values(prefix: str, values: Mapping[str, Any]) -> None:
    """Check ``values`` (plain Python) as the config node at ``prefix`` (``""`` for the whole
    config, ``"data"``, ``"model.inference"`` …). Raises :class:`~dynaseg.errors.ArgumentError`
    ``<key>=<value>: expected <what>`` for one wrong value, a :class:`ConfigError` with one such
    line per key for several."""
    schema = _schema_at(prefix)
    try:
        schema.model_validate(values)
    except ValidationError as err:
        found: dict[str, ArgumentError] = {}
        for problem in err.errors():
            path, field = _field_of(schema, tuple(problem["loc"]))
            key = ".".join([p for p in prefix.split(".") if p] + path)
            if key not in found:
                value = _value_at(values, path)
                expected = field.description or "a group of keys (key: value)"  # a sub-schema
                found[key] = ArgumentError(key, value, expected)
        errors = list(found.values())
        if len(errors) == 1:
            raise errors[0] from None
        raise ConfigError("\nerror: ".join(str(e) for e in errors)) from None


def _plain(node: Any) -> Any:
    """Plain Python of a config node, leaving out what cannot be resolved yet (``???``, a
    ``${hydra:…}`` outside a Hydra run): those keys are not checked."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig):
        out = {}
        for key in node:
            if OmegaConf.is_missing(node, key):
                continue
            try:
                value = node[key]
            except Exception:  # an interpolation that needs a running Hydra app, or a typo
                continue
            out[str(key)] = _plain(value)
        return out
    if isinstance(node, ListConfig):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except Exception:
            return None
    if isinstance(node, tuple):
        return [_plain(v) for v in node]
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if hasattr(node, "item") and type(node).__module__ == "numpy":  # numpy scalar
        return node.item()
    return node


def validate_config(cfg: Any) -> None:
    """Check a composed config (train, eval or predict) against :class:`RunSchema`: one
    ``<key>=<value>: expected <what>`` per wrong value (see the module docstring)."""
    check_values("", _plain(cfg))


def plain_values(**values: Any) -> dict[str, Any]:
    """Constructor arguments as the config would hold them (tuples → lists, numpy scalars →
    Python numbers), for :func:`check_values` in library use."""
    return {k: _plain(v) for k, v in values.items()}


# ------------------------------------------------------------------------------ documentation
def schema_rows(schema: type[BaseModel] = RunSchema, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(key, expected)`` for every checked key, in declaration order."""
    for name, field in schema.model_fields.items():
        key = f"{prefix}{name}"
        found = _submodel(field.annotation)
        if found is None:
            yield key, field.description or ""
        elif found[0] == "model":
            yield from schema_rows(found[1], f"{key}.")
        else:
            yield from schema_rows(found[1], f"{key}.<name>.")


DOC_BEGIN = "<!-- config-schema:begin (generated: python scripts/config_docs.py) -->"
DOC_END = "<!-- config-schema:end -->"


def schema_markdown() -> str:
    """The table of docs/configs.md's "Checked values" section."""
    lines = ["| key | expected |", "|---|---|"]
    lines += [f"| `{key}` | {text} |" for key, text in schema_rows()]
    return "\n".join(lines)
