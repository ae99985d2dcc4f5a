"""Export HF folders from a pre-training checkpoint:
`python launchers/export.py --checkpoint OUTPUT_DIR [--tag step-00000100] --output_dir DIR` writes DIR/student and
DIR/teacher (safetensors), loadable with `AutoModel.from_pretrained`, from a checkpoint of any ZeRO stage."""

import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from vidrop.training.checkpoint import newest_complete_tag
from vidrop.training.export import export_from_checkpoint


@dataclass
class ExportArguments:
    checkpoint: str = field(metadata={"help": "the output_dir of a pre-training run"})
    output_dir: str = field(metadata={"help": "where the student/ and teacher/ folders go"})
    tag: str | None = field(default=None, metadata={"help": "checkpoint tag (default: the newest complete one)"})


def main(argv=None):
    (args,) = HfArgumentParser(ExportArguments).parse_args_into_dataclasses(argv)
    tag = args.tag or newest_complete_tag(args.checkpoint)
    if tag is None:
        raise SystemExit(f"no complete checkpoint in {args.checkpoint}/checkpoints")
    export_from_checkpoint(args.checkpoint, tag, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
