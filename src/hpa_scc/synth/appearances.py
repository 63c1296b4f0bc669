"""Named appearances of the generator: SynthConfig changes that make images nothing was tuned on.

    replace(SynthConfig(seed=11), **APPEARANCES["other"])

`default` is the generator as tuned (segmenter, recipes); `other` has smaller, denser cells,
larger nuclei, a dim and blurry exposure, more noise, more mitotic cells and more 16-bit files.
"""

from __future__ import annotations

APPEARANCES: dict[str, dict] = {
    "default": {},
    "other": dict(cells_min=16, cells_max=36, cell_radius=0.085, nucleus_ratio=0.5, brightness=0.55, blur=1.4,
                  noise=0.035, p_mitotic=0.08, fraction_16bit=0.5),
}
