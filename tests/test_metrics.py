"""The confusion-matrix metric against a numpy reference (mmseg's definitions)."""

from __future__ import annotations

import math

import numpy as np
import torch

from dynaseg.metrics import SegmentationMetric, format_metrics_table, predicted_labels


def numpy_reference(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255):
    valid = gt != ignore
    p, g = pred[valid], gt[valid]
    ious, accs = [], []
    for c in range(num_classes):
        inter = np.sum((p == c) & (g == c))
        union = np.sum((p == c) | (g == c))
        area_gt = np.sum(g == c)
        ious.append(inter / union if union else np.nan)
        accs.append(inter / area_gt if area_gt else np.nan)
    return {
        "aAcc": np.mean(p == g),
        "mIoU": np.nanmean(ious),
        "mAcc": np.nanmean(accs),
        "IoU": np.array(ious),
        "Acc": np.array(accs),
    }


def test_metric_matches_numpy_reference_with_ignore_and_absent_classes() -> None:
    rng = np.random.default_rng(0)
    num_classes = 7
    # class 5 never appears anywhere; class 6 only in predictions (IoU 0, Acc undefined)
    gt = rng.integers(0, 5, (3, 20, 24))
    gt[rng.random(gt.shape) < 0.2] = 255
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 5, gt.shape))
    pred[gt == 255] = 3
    pred[0, :2, :2] = 6
    metric = SegmentationMetric(num_classes)
    for b in range(3):  # several updates accumulate
        metric.update(torch.from_numpy(pred[b : b + 1]), torch.from_numpy(gt[b : b + 1]))
    ours = metric.compute()
    ref = numpy_reference(pred, gt, num_classes)
    for key in ("aAcc", "mIoU", "mAcc"):
        assert math.isclose(float(ours[key]), ref[key], rel_tol=1e-12), key
    np.testing.assert_allclose(ours["IoU"].numpy(), ref["IoU"], rtol=1e-12)
    np.testing.assert_allclose(ours["Acc"].numpy(), ref["Acc"], rtol=1e-12)
    assert math.isnan(float(ours["IoU"][5])) and float(ours["IoU"][6]) == 0.0
    assert math.isnan(float(ours["Acc"][6]))


def test_logits_are_argmaxed_and_state_is_int64_sum_reduced() -> None:
    metric = SegmentationMetric(3)
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 1.0
    metric.update(logits, torch.tensor([[[2, 2], [0, 255]]]))
    assert metric.confmat.dtype == torch.int64
    assert metric.confmat.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 2]]
    assert metric._reductions["confmat"].__name__ in {"dim_zero_sum", "sum"}


def test_merging_two_processes_equals_one() -> None:
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(rng.integers(0, 4, (4, 8, 8)))
    pred = torch.from_numpy(rng.integers(0, 4, (4, 8, 8)))
    whole, a, b = SegmentationMetric(4), SegmentationMetric(4), SegmentationMetric(4)
    whole.update(pred, gt)
    a.update(pred[:2], gt[:2])
    b.update(pred[2:], gt[2:])
    assert torch.equal(a.confmat + b.confmat, whole.confmat)


def test_bad_labels_and_sizes_give_clear_errors() -> None:
    metric = SegmentationMetric(3)
    try:
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 9], [1, 1]]]))
    except ValueError as err:
        assert "[9]" in str(err) and "ignore_index" in str(err)
    else:  # pragma: no cover
        raise AssertionError("label 9 accepted")
    try:
        metric.update(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2, dtype=torch.long))
    except ValueError as err:
        assert "differ in size" in str(err)
    else:  # pragma: no cover
        raise AssertionError("size mismatch accepted")


def test_table_lists_every_class_and_the_means() -> None:
    from rich.console import Console

    metric = SegmentationMetric(2)
    metric.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
    console = Console(record=True, width=80)
    console.print(format_metrics_table(metric.compute(), ["road", "car"]))
    text = console.export_text()
    assert "road" in text and "car" in text and "50.00" in text and "—" in text


def test_confusion_matrix_equals_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 7, (3, 20, 24), generator=g)
    target[:, :3] = 255
    preds = torch.randint(0, 7, (3, 20, 24), generator=g)
    ours = SegmentationMetric(7)
    theirs = MulticlassJaccardIndex(7, ignore_index=255, average=None)
    ours.update(preds, target)
    theirs.update(preds, target)
    assert torch.equal(ours.confmat, theirs.confmat)
    assert torch.allclose(ours.compute()["IoU"].float(), theirs.compute(), atol=1e-7)


def test_deterministic_mode_avoids_bincount_and_gives_the_same_counts(monkeypatch) -> None:
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 5, (2, 16, 16), generator=g)
    target[0, 0] = 255
    preds = torch.randn(2, 5, 16, 16, generator=g)
    expected = SegmentationMetric(5)
    expected.update(preds, target)

    def no_bincount(*args, **kwargs):
        raise AssertionError("torch.bincount has no deterministic CUDA kernel")

    monkeypatch.setattr(torch, "bincount", no_bincount)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        metric = SegmentationMetric(5)
        metric.update(preds, target)
    finally:
        torch.use_deterministic_algorithms(was)
    assert torch.equal(metric.confmat, expected.confmat)
    assert int(metric.confmat.sum()) == 2 * 16 * 16 - 16


def test_predicted_labels_equal_argmax_with_ties_and_nans() -> None:
    """The label map is ``argmax(1)`` exactly: first index on a tie, a NaN counts as highest."""
    gen = torch.Generator().manual_seed(0)
    for classes in (1, 2, 9, 150):
        full = torch.randint(-2, 3, (3, classes, 17, 23), generator=gen).float()  # many ties
        scores = full[:, :, :, ::2]  # strided input too
        scores[0, :, 0, 0] = float("nan")  # all NaN
        scores[1, :, 2, 3] = 2.0  # all tied at the top ...
        scores[1, classes - 1, 2, 3] = float("nan")  # ... then a NaN in the last class
        scores[2, :, 5, 5] = float("-inf")
        scores[2, classes - 1, 5, 5] = float("inf")
        scores[2, :, 6, 6] = float("-inf")  # all -inf
        expected = scores.argmax(1)
        got = predicted_labels(scores)
        assert got.dtype == torch.int64 and torch.equal(got, expected)
        assert got[0, 0, 0] == 0 and got[1, 2, 3] == classes - 1 and got[2, 5, 5] == classes - 1
    assert predicted_labels(torch.zeros(2, 4, 3, 3)).eq(0).all()  # all tied: the first class
