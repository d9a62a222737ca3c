# Builds an image of the configuration (snakemake.params.spec: a user_images.ImageSpec), or
# finds it in the cache, and writes its folder into the output.
from pathlib import Path

from tansiv.vm import user_images

with open(snakemake.log[0], "w") as log:
    image = user_images.build(snakemake.params.spec, say=lambda line: print(line, file=log))
    print(f"image {snakemake.wildcards.image}: {image.path}", file=log)
Path(snakemake.output[0]).write_text(f"{image.path}\n")
