"""Named appearances of the generator: SynthConfig changes that make images nothing was tuned on.

    replace(SynthConfig(seed=11), **APPEARANCES["other"])

`default` is the generator as tuned (segmenter, recipes); `other` has smaller, denser cells,
larger nuclei, a dim and blurry exposure, more noise, more mitotic cells and more 16-bit files;
`packed` is a confluent field: cells packed until they overlap (neighbouring nuclei touch), partly
aligned, with elongated, lobed nuclei (the dense real fields' look, which the shipped U-Net never saw).
"""

from __future__ import annotations

APPEARANCES: dict[str, dict] = {
    "default": {},
    "other": dict(cells_min=16, cells_max=36, cell_radius=0.085, nucleus_ratio=0.5, brightness=0.55, blur=1.4,
                  noise=0.035, p_mitotic=0.08, fraction_16bit=0.5),
    "packed": dict(cells_min=25, cells_max=40, cell_radius=0.1, spacing=0.85, alignment=0.3, nucleus_elongation=0.6,
                   nucleus_ratio=0.5, nucleus_lobes=0.2),
}
