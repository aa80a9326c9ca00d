import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

# pytest-xdist runs one process per core: more than one torch thread each oversubscribes the
# cores, and OpenMP's spinning threads then slow training steps by orders of magnitude.
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def torchrun():
    """Run ``originality`` CLI arguments in two CPU processes under torchrun, one thread each."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        # A session of its own: on a timeout the workers go too, not only torchrun (a hung run
        # would otherwise keep both cores busy for the rest of the suite).
        proc = subprocess.Popen(
            [*cmd, "-m", "originality.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    return run


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """512 originality-mix images at 32 px."""
    from originality.shapes import preset
    from originality.shapes.dataset import make_dataset

    return make_dataset(
        preset("originality-mix"), 512, tmp_path_factory.mktemp("data") / "mix", size=32, progress=False
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory):
    """The tiny preset trained once on ``tiny_data`` (64 VAE + 128 UNet steps): a BERT-based pipeline."""
    from originality.models import train, train_preset

    return train(train_preset("tiny"), tiny_data, tmp_path_factory.mktemp("models") / "tiny", progress=False)
