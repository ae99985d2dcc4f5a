"""Shared by the learning benchmarks: a pre-training run per seed in a work folder, reused once it finished."""

import json
import subprocess
import tempfile
from pathlib import Path

from vidrop.training.arguments import parse_arguments, resolved
from vidrop.training.launch import deepspeed_command

ROOT = Path(__file__).resolve().parents[1]


def work_folder(workdir=None):
    """The benchmark's work folder, made: `workdir` as an absolute path (the runs start inside it, so a relative
    one would be read from there) or, when None, a new temporary folder."""
    folder = Path(workdir or tempfile.mkdtemp()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pretrain(workdir, name, seed, *options):
    """Run `launchers/pretrain.py` with `options` and `--seed seed` into `workdir/<name>[-seed<seed>]` (seed 0: the
    plain folder, and no `--seed`, so earlier work folders are reused), from `workdir`, unless a run finished
    there (its `summary.json`) -> (its folder, the command). A finished run trained with other arguments than
    these is an error, not a result."""
    output = Path(workdir) / (name if seed == 0 else f"{name}-seed{seed}")
    arguments = ["--output_dir", output, *(["--seed", seed] if seed else []), *options]
    command = deepspeed_command(ROOT / "launchers" / "pretrain.py", *arguments)
    if (output / "summary.json").exists():
        changed = changed_arguments(output, arguments)
        if changed:
            raise ValueError(f"{output} holds a finished run with other arguments ({'; '.join(changed)}); "
                             "remove it or choose another --workdir")
    else:
        subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return output, command


def changed_arguments(output, arguments):
    """`'group.field: saved -> new'` for every argument of the finished run in `output` that `arguments` (its
    command line) would change. Paths are compared inside each run's own work folder, so that a run linked in from
    another work folder (the same scratch run scored against several grown variants) compares equal; an argument
    that did not exist when the run was trained is left out."""

    def inside_workdir(values):
        workdir = f"{Path(values['train']['output_dir']).parent}/"
        return json.loads(json.dumps(values).replace(workdir, "<workdir>/"))

    saved = inside_workdir(json.loads((output / "arguments.json").read_text()))
    new = inside_workdir(resolved(*parse_arguments([str(a) for a in arguments])))  # as stored: lists, not tuples
    return [f"{group}.{field}: {saved[group][field]!r} -> {value!r}"
            for group, fields in new.items() for field, value in fields.items()
            if field != "local_rank" and field in saved[group] and saved[group][field] != value]
