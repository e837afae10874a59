import numpy as np
import pytest

import shendu


@pytest.fixture(autouse=True)
def _seeded():
    shendu.seed(0)
    np.random.seed(0)
    yield
