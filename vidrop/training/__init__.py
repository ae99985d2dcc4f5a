"""DeepSpeed training: the only package of ViDROP that imports deepspeed."""
