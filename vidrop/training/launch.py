"""Training processes: a free local port, the `deepspeed` launcher command of a script, and cleaning up after
DeepSpeed's shared memory."""

import os
import socket
from pathlib import Path


def free_port():
    """A TCP port on 127.0.0.1 that is free now (for `--master_port` / `MASTER_PORT`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deepspeed_command(script, *args, num_gpus=None):
    """`deepspeed [--num_gpus N] --master_port P script args...` on a free port (N processes on CPU too)."""
    ranks = ["--num_gpus", str(num_gpus)] if num_gpus is not None else []
    return ["deepspeed", *ranks, "--master_port", str(free_port()), str(script), *map(str, args)]


def release_shared_memory(shm_dir="/dev/shm"):
    """Remove this process's DeepSpeed CPU all-reduce buffers (`deepspeed_allreduce_buffer_*_ADDR_PORT_RANK`).

    DeepSpeed's CPU accelerator creates one 69 MB shared-memory buffer per rank and never unlinks it, so every
    run on CPU leaves RAM-backed files behind until /dev/shm is full. Call it on every rank after the last
    collective: mappings still open stay valid, only the names go.
    """
    name = f"deepspeed_allreduce_buffer_*_{os.environ.get('MASTER_ADDR')}_{os.environ.get('MASTER_PORT')}_" \
           f"{os.environ.get('LOCAL_RANK')}"
    for path in Path(shm_dir).glob(name):
        path.unlink(missing_ok=True)
