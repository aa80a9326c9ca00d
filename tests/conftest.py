import os

import torch

# pytest-xdist runs one process per core: more than one torch thread each oversubscribes the
# cores, and OpenMP's spinning threads then slow training steps by orders of magnitude.
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
