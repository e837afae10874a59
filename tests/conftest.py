import numpy as np
import pytest

import shendu


@pytest.fixture(autouse=True)
def _seeded():
    shendu.seed(0)
    np.random.seed(0)
    yield


try:  # the test oracle: keep it on one thread so parallel work on 2 cores stays predictable
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - CI installs torch; elsewhere torch tests skip
    pass
