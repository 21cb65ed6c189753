"""Figures of segmentation runs and of the dynamic heads' adaptive internals.

Every ``plot_*`` function returns a matplotlib :class:`~matplotlib.figure.Figure` built without
``pyplot`` (no display, no global figure state), so it works in training callbacks, scripts and
notebooks alike: ``fig.savefig("x.png")``, :func:`figure_to_array` for loggers, or let Jupyter
show it. The figures:

- :func:`plot_predictions` — image / ground truth / prediction overlays with a legend of class
  names, one row per image (colours: :mod:`dynaseg.palettes`, the same as predicted PNGs);
- :func:`plot_confusion_matrix` — row-normalised confusion matrix with class names;
- :func:`plot_per_class` — per-class IoU (and Acc) bar chart;
- :func:`plot_dmnet_filters` — DMNet's generated ``k×k`` filters per branch for two images side by
  side and their difference (He et al., "Dynamic Multi-scale Filters for Semantic Segmentation",
  ICCV 2019, Eq. 1: ``g_k(x)`` = 1×1 conv of the ``k×k``-pooled context);
- :func:`plot_cac_weights` — CaC-Net's spatial weighting maps ``W`` (Eq. 2) and context kernels
  ``D`` (Eq. 1) (Liu et al., "CaC-Net: Context-adaptive Convolution", ECCV 2020,
  arXiv:2004.08222);
- :func:`plot_sac_scales` — SAC's per-position scale coefficients (Zhang et al., "Scale-adaptive
  Convolutions for Scene Parsing", ICCV 2017, §3.2);
- :func:`plot_ds_offsets` — DSNet's sampling offsets as arrows and magnitude (context guided
  dynamic sampling, Eq. 2);
- :func:`plot_head_internals` picks the right one of the four for a head (:func:`internals_kind`);
- :func:`plot_run_comparison` — per-class IoU of several runs from their ``metrics.json``.

The internals come from :func:`dynaseg.models.heads.base.capture_internals`;
:func:`predict_samples` runs a model on dataset images and collects predictions and internals.
Modules: :mod:`~dynaseg.visualization.figures` (runs), :mod:`~dynaseg.visualization.internals`
(heads), :mod:`~dynaseg.visualization.samples` (running a model); their names are re-exported here.
Plotting only: finding and loading a run's checkpoint is
:mod:`dynaseg.run.checkpoints`, class colours :mod:`dynaseg.palettes`.
"""

from dynaseg.visualization.figures import (
    ArrayLike,
    figure_to_array,
    load_run_metrics,
    plot_confusion_matrix,
    plot_per_class,
    plot_predictions,
    plot_run_comparison,
    row_normalise,
    save_figure,
    to_numpy,
)
from dynaseg.visualization.internals import (
    internals_kind,
    plot_cac_weights,
    plot_dmnet_filters,
    plot_ds_offsets,
    plot_head_internals,
    plot_sac_scales,
)
from dynaseg.visualization.samples import (
    Sample,
    evenly_spaced,
    predict_samples,
)

__all__ = [
    "to_numpy",
    "figure_to_array",
    "save_figure",
    "plot_predictions",
    "row_normalise",
    "plot_confusion_matrix",
    "plot_per_class",
    "plot_run_comparison",
    "load_run_metrics",
    "ArrayLike",
    "plot_dmnet_filters",
    "plot_cac_weights",
    "plot_sac_scales",
    "plot_ds_offsets",
    "internals_kind",
    "plot_head_internals",
    "Sample",
    "predict_samples",
    "evenly_spaced",
]
