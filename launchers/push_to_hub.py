"""Push a ViDROP model or compressed dataset to the Hugging Face Hub.

    python launchers/push_to_hub.py --checkpoint outputs/demo --repo_id me/vidrop-tiny
    python launchers/push_to_hub.py --dataset outputs/data/synthetic --repo_id me/synthetic-motions
    python launchers/push_to_hub.py --checkpoint outputs/demo --repo_id me/vidrop-tiny --dry_run staged/

The token comes from `HF_TOKEN` or `hf auth login`. A model repo loads with
`AutoModel.from_pretrained(repo, trust_remote_code=True)`; a dataset repo streams with `--train_dataset repo`.
"""

import logging
import sys

from transformers import HfArgumentParser

from vidrop.hub import HubPushError, PushArguments, push


def main(argv=None):
    (args,) = HfArgumentParser(PushArguments).parse_args_into_dataclasses(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        where = push(args)
    except HubPushError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{'staged in' if args.dry_run else 'pushed to'} {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
