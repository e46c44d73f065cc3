"""teal-recalibrated: TEAL + recalibration, our variant (not in the paper).

TEAL (Liu et al. 2024, arXiv:2408.14690) sets every threshold from the dense
model's activations once (see ``teal``). Thresholds set on dense activations
zero more than the target once the layers upstream are sparse too (a
sparsified input shrinks the next hidden state), so this variant recalibrates
them ``refine`` times on the model with the previous thresholds on, which
brings the measured sparsity back to the target. Everything else is ``teal``.
"""

from dataclasses import dataclass

from sparsebench.registry import sibling_module

TEAL = sibling_module(__file__, "teal").TEAL


class TEALRecalibrated(TEAL):
    name = "teal-recalibrated"
    display_name = "TEAL (recalibrated)"

    @dataclass
    class Params(TEAL.Params):
        refine: int = 1  # recalibration rounds on the sparsified model after the dense one
