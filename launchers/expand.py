"""Grow a ViDROP model into a bigger one that computes the same function:
`python launchers/expand.py --from_pretrained DIR --to small|base|large|huge|config.json --output_dir DIR`.

The grown folder loads with `AutoModel.from_pretrained` and `pretrain.py --init_from`. `--noise` perturbs cloned
units (their outputs still cancel) so that they diverge in training; without it clones stay identical.
"""

import logging
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from vidrop.expansion import DEPTH_PLACEMENTS, expand_folder


@dataclass
class ExpandArguments:
    from_pretrained: str = field(metadata={"help": "an HF VidropModel folder"})
    to: str = field(
        metadata={"help": "a preset (tiny, small, base, large, huge) or a JSON file of VidropConfig fields "
                          "(hidden_size, num_attention_heads, intermediate_size, num_hidden_layers)"}
    )
    output_dir: str = field(metadata={"help": "where the grown folder is written"})
    noise: float = field(
        default=0.0,
        metadata={"help": "symmetry-breaking noise, relative to each weight's std (0: exact clones, which never "
                          "separate in training; 1.0 to train on, as pretrain.py's --growth_noise)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the noise"})
    placement: str = field(
        default="interleaved", metadata={"help": f"where new blocks go: {', '.join(DEPTH_PLACEMENTS)}"}
    )


def main(argv=None):
    (args,) = HfArgumentParser(ExpandArguments).parse_args_into_dataclasses(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    grown = expand_folder(args.from_pretrained, args.to, args.output_dir, args.noise, args.seed, args.placement)
    config = grown.config
    logging.getLogger("expand").info(
        "wrote %s: %d blocks, width %d, %d heads, MLP %d", args.output_dir, config.num_hidden_layers,
        config.hidden_size, config.num_attention_heads, config.intermediate_size,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
