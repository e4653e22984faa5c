import os
import pytest
import torch

from pointcept_distill.utils.misc import check_tensor


def test_check_tensor_passes_true_and_names_the_failure():
    check_tensor(torch.tensor(True), "never raised")
    check_tensor((torch.arange(3) >= 0).all(), "never raised")
    with pytest.raises(ValueError, match="offset\\[-1\\] must be 7"):
        check_tensor(torch.tensor([3, 5])[-1] == 7, "offset[-1] must be 7")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_check_tensor_on_cuda_queues_without_a_sync():
    # CPU twin: the test above (same checks, evaluated at once)
    torch.cuda.set_sync_debug_mode("error")
    try:
        check_tensor(torch.ones(4, device="cuda").sum() == 4, "never raised")
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_display_path_is_never_absolute(tmp_path):
    from pointcept_distill.utils.misc import display_path
    inside = tmp_path / "exp" / "demo" / "teacher"
    assert display_path(inside, start=tmp_path) == os.path.join("exp", "demo", "teacher")
    assert display_path("/elsewhere/data/nuscenes/raw", start=tmp_path) == ".../nuscenes/raw"
    assert display_path(str(inside / "model.pth"), start=inside) == "model.pth"
    assert display_path(None) is None and display_path("") == ""
