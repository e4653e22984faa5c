import pytest
import torch
import torch.nn.functional as F

from pointcept_distill.models.losses import CrossEntropyLoss, LovaszLoss, build_criteria


def _lovasz_reference(logits, labels, ignore_index=None, class_seen=None):
    """Pointcept's Lovasz-Softmax step by step: drop ignored rows, loop over present classes."""
    probs = logits.softmax(1)
    if ignore_index is not None:
        keep = labels != ignore_index
        probs, labels = probs[keep], labels[keep]
    losses = []
    for c in labels.unique().tolist():
        if class_seen is not None and c not in class_seen:
            continue
        fg = (labels == c).float()
        err = (fg - probs[:, c]).abs()
        err_sorted, perm = torch.sort(err, descending=True)
        fg_sorted = fg[perm]
        g = fg_sorted.sum()
        jaccard = 1 - (g - fg_sorted.cumsum(0)) / (g + (1 - fg_sorted).cumsum(0))
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(err_sorted, grad))
    return torch.stack(losses).mean()


def test_lovasz_matches_reference_with_ignore_and_class_seen():
    torch.manual_seed(0)
    logits = torch.randn(300, 6, dtype=torch.float64)
    labels = torch.randint(-1, 5, (300,))             # class 5 absent, -1 ignored
    got = LovaszLoss("multiclass", ignore_index=-1)(logits, labels)
    assert torch.allclose(got.double(), _lovasz_reference(logits.float(), labels, -1).double(), atol=1e-6)
    got = LovaszLoss("multiclass", ignore_index=-1, class_seen=[0, 2, 3], loss_weight=2.0)(logits, labels)
    want = 2.0 * _lovasz_reference(logits.float(), labels, -1, [0, 2, 3])
    assert torch.allclose(got.double(), want.double(), atol=1e-6)


def test_lovasz_gradient_matches_reference():
    torch.manual_seed(1)
    a = torch.randn(120, 4, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    labels = torch.randint(-1, 4, (120,))
    LovaszLoss("multiclass", ignore_index=-1)(a, labels).backward()
    _lovasz_reference(b, labels, -1).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_lovasz_ignores_appended_rows_even_with_tied_errors():
    """Ignored rows appended to a batch (a fixed-capacity batch's padding) change neither the loss nor any real
    row's gradient, also where errors tie (repeated rows: the stable sort keeps the tied rows' order)."""
    torch.manual_seed(3)
    logits = torch.randn(6, 4).repeat(50, 1)                             # 300 rows, 6 distinct: ties everywhere
    labels = torch.randint(0, 4, (6,)).repeat(50)
    labels[::11] = -1
    padded_logits = torch.cat([logits, torch.randn(97, 4)]).requires_grad_()
    logits.requires_grad_()
    loss = LovaszLoss("multiclass", ignore_index=-1)
    value = loss(logits, labels)
    value.backward()
    padded_value = loss(padded_logits, torch.cat([labels, labels.new_full((97,), -1)]))
    padded_value.backward()
    torch.testing.assert_close(padded_value, value, rtol=1e-6, atol=0)
    torch.testing.assert_close(padded_logits.grad[:300], logits.grad, rtol=1e-6, atol=1e-9)
    assert (padded_logits.grad[300:] == 0).all() and logits.grad.abs().max() > 0


def test_lovasz_unsupported_mode_is_named():
    with pytest.raises(NotImplementedError, match="binary"):
        LovaszLoss("binary")


def test_cross_entropy_ignores_and_weights():
    torch.manual_seed(2)
    logits, labels = torch.randn(50, 3), torch.randint(-1, 3, (50,))
    got = CrossEntropyLoss(weight=[1.0, 2.0, 0.5], loss_weight=0.5, ignore_index=-1)(logits, labels)
    want = 0.5 * F.cross_entropy(logits, labels, weight=torch.tensor([1.0, 2.0, 0.5]), ignore_index=-1)
    assert torch.allclose(got, want)


def test_criteria_sums_and_names_terms():
    torch.manual_seed(3)
    logits, labels = torch.randn(40, 3), torch.randint(0, 3, (40,))
    criteria = build_criteria([dict(type="CrossEntropyLoss", ignore_index=-1),
                               dict(type="LovaszLoss", mode="multiclass", ignore_index=-1),
                               dict(type="CrossEntropyLoss", loss_weight=0.1)])
    terms = criteria.terms(logits, labels)
    assert list(terms) == ["loss_cross_entropy", "loss_lovasz", "loss_cross_entropy_1"]
    assert torch.allclose(criteria(logits, labels), sum(terms.values()))
    assert torch.allclose(terms["loss_cross_entropy_1"], 0.1 * terms["loss_cross_entropy"])


def test_empty_criteria_returns_pred():
    pred = torch.randn(3)
    assert build_criteria(None)(pred, None) is pred
