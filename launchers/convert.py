"""Convert a VideoMAE or V-JEPA 2 checkpoint into a ViDROP HF folder for continued pre-training:
`python launchers/convert.py --from_pretrained DIR_OR_REPO --source videomae|vjepa2 --output_dir DIR`.

The folder loads with `AutoModel.from_pretrained` and `pretrain.py --init_from DIR`; `conversion.json` in it lists
the source weights that have no ViDROP counterpart (decoder, predictor, classifier) and the freshly initialised
ViDROP weights.
"""

import logging
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from vidrop.conversion import SOURCES, convert_to_folder


@dataclass
class ConvertArguments:
    from_pretrained: str = field(metadata={"help": "a transformers VideoMAE* / VJEPA2* folder or Hub repo id"})
    source: str = field(metadata={"help": f"what the folder holds: {', '.join(SOURCES)}", "choices": SOURCES})
    output_dir: str = field(metadata={"help": "where the ViDROP folder is written"})
    no_cls_token: bool = field(
        default=False,
        metadata={"help": "convert without adding a CLS token (the outputs then equal the source encoder's; "
                          "its CLS loss is off)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the freshly initialised CLS and mask tokens"})


def main(argv=None):
    (args,) = HfArgumentParser(ConvertArguments).parse_args_into_dataclasses(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = convert_to_folder(args.from_pretrained, args.output_dir, args.source, not args.no_cls_token, args.seed)
    logging.getLogger("convert").info(
        "wrote %s: %d source weights unused, %d initialised", args.output_dir, len(report.unused),
        len(report.initialised),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
