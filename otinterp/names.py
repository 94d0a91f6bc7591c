"""The names every module shares, defined once: the paths and the path measures.

Light on purpose (no imports): the command line, the results store and the figures read these
without loading torch. A new path or measure is added here first (docs/definitions.md §1, §4).
"""

#: The couplings of the paper: optimal transport, the row-wise (CLIP) pairing and a random one.
COUPLINGS = ("ot", "clip", "random")
#: Every path between two prompts, in display order: the couplings, then slerp of the whole
#: embedding (no coupling). ``"ot"`` is the reference of every comparison.
PATHS = (*COUPLINGS, "slerp")
#: Display names of the paths.
PATH_LABELS = {"ot": "OT", "clip": "CLIP", "random": "Random", "slerp": "Slerp"}

#: The per-path measures, each derived from the stored LPIPS distances (:func:`otinterp.ppl.summaries`).
MEASURES = ("ppl", "max_step", "total_length", "smoothness", "perceptual_length", "path_efficiency", "excursion")
#: Each measure's name and formula (two lines, for axes), with how it scales with the number of
#: intervals ``K`` of a steady path (``d_k`` is LPIPS, a squared distance: docs/definitions.md §4).
MEASURE_LABELS = {
    "ppl": "PPL\n(1/K) Σ d_k, ~1/K²",
    "max_step": "largest step\nmax_k d_k, ~1/K²",
    "total_length": "total length\nΣ d_k = K·PPL, ~1/K",
    "smoothness": "smoothness\n1 − Gini(d)",
    "perceptual_length": "perceptual length\nΣ √d_k",
    "path_efficiency": "path efficiency\n√d(I₀, I_K) / Σ √d_k",
    "excursion": "excursion\nmax_k min(√d(I_k, I₀), √d(I_k, I_K)) / √d(I₀, I_K)",
}
#: The measures beyond the paper's PPL that are drawn and tabled beside it.
BEYOND_PPL = ("perceptual_length", "path_efficiency", "excursion", "smoothness")
