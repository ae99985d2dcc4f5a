"""Starting training processes: a free local port and the `deepspeed` launcher command of a script."""

import socket


def free_port():
    """A TCP port on 127.0.0.1 that is free now (for `--master_port` / `MASTER_PORT`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deepspeed_command(script, *args, num_gpus=None):
    """`deepspeed [--num_gpus N] --master_port P script args...` on a free port (N processes on CPU too)."""
    ranks = ["--num_gpus", str(num_gpus)] if num_gpus is not None else []
    return ["deepspeed", *ranks, "--master_port", str(free_port()), str(script), *map(str, args)]
