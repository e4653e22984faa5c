"""Two distillation steps compute bit for bit the losses and gradients recorded in tests/fixtures/kd_step/ (the file of
this CPU's vector instructions), for each KD loss alone and all together: the values ``kd_step_record.py`` wrote at commit 60df246, when the
distiller computed every loss itself (the KD losses as hooks must not change a bit of a step), re-recorded once for
the Lovász loss's stable sort (tests/fixtures/README.md)."""
from __future__ import annotations

import pytest
import torch
from torch.torch_version import TorchVersion
from kd_step_record import CASES, FIXTURES, fixture_for, make_data, platform, record_case


@pytest.fixture(scope="module")
def recorded():
    path = fixture_for(platform())
    reference = None
    if path.is_file():
        with torch.serialization.safe_globals([TorchVersion]):     # the recording platform names torch's version
            reference = torch.load(path, weights_only=True)
    if reference is None or reference["platform"] != platform():
        recorded_on = sorted(p.name for p in FIXTURES.glob("steps_*.pt"))
        pytest.skip(f"no reference recorded on {platform()} in {recorded_on}: CPU kernels round differently; run "
                    f"tests/distill/kd_step_record.py at the commit tests/fixtures/README.md names to compare here")
    return reference


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    make_data(root)
    return root


def _differences(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> list[str]:
    if list(got) != list(want):
        return [f"keys {list(got)} != {list(want)}"]
    return [key for key in want if not torch.equal(got[key], want[key])]


@pytest.mark.parametrize("case", sorted(CASES))
def test_steps_give_the_recorded_losses_and_gradients(case, recorded, data_root, tmp_path):
    assert recorded["cases"][case] == CASES[case]
    steps = record_case(CASES[case], data_root, tmp_path)
    want = recorded["steps"][case]
    assert len(steps) == len(want) == 2
    for i, (got, expected) in enumerate(zip(steps, want)):
        assert sorted(got["outputs"]) == sorted(expected["outputs"]), i
        # the terms' order in the step's dict is free; their values and the total's are not
        outputs = _differences(got["outputs"], {k: expected["outputs"][k] for k in got["outputs"]})
        assert not outputs, (f"step {i + 1}", outputs)
        grads = _differences(got["grads"], expected["grads"])
        assert not grads, (f"step {i + 1}", grads)
