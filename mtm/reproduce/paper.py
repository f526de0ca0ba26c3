"""The paper's own numbers, kept once (reference notes 6.1-6.6; the July-2024 preprint).

Activity columns are bits per spike (per-neuron, NaN-mean), ``choice`` accuracy and ``whisker_me``
R^2. Tables 1/3, 4 and 7 come from one selected IBL session each (7 from another session than 1/3);
Tables 2, 5 and 6 are means over the 5 held-out IBL sessions, fine-tuned.
"""

from __future__ import annotations

COLUMNS = ("co-smooth", "forward-pred", "intra-region", "inter-region", "choice", "whisker_me")
ACTIVITY = COLUMNS[:4]


def _rows(values: dict[str, tuple[float, ...]], columns=COLUMNS) -> dict[str, dict[str, float]]:
    return {name: dict(zip(columns, row)) for name, row in values.items()}


#: Tables 1 and 3: single-session NDT1, one scheme per model (Table 1 = the four activity columns).
PAPER_TABLE3 = _rows({
    "Temporal (baseline)": (0.84, 0.42, -0.20, 0.57, 0.66, 0.56),
    "Neuron": (1.04, -0.21, -0.22, 0.78, 0.68, 0.60),
    "Causal": (0.44, 0.48, -0.36, 0.23, 0.75, 0.59),
    "Intra-region": (-9.86, -2.97, 0.32, -9.06, 0.55, 0.38),
    "Inter-region": (0.92, 0.01, -0.58, 0.90, 0.52, 0.59),
    "MtM (not prompted)": (0.99, 0.54, 0.42, 0.83, 0.69, 0.61),
    "MtM (prompted)": (0.98, 0.57, 0.43, 0.84, 0.63, 0.61),
})
#: Table 4: single-session NDT2, one scheme per model.
PAPER_TABLE4 = _rows({
    "Random token (baseline)": (-6.94, 0.50, -0.43, -6.95, 0.74, 0.58),
    "Neuron": (0.91, 0.18, -0.26, 0.62, 0.65, 0.62),
    "Causal": (0.02, 0.52, -0.42, -0.20, 0.69, 0.59),
    "Intra-region": (-10.10, -1.30, 0.21, -8.17, 0.65, 0.43),
    "Inter-region": (0.63, 0.18, -0.63, 0.66, 0.75, 0.39),
    "MtM (not prompted)": (0.90, 0.56, 0.47, 0.80, 0.68, 0.62),
    "MtM (prompted)": (0.92, 0.54, 0.46, 0.81, 0.69, 0.62),
})
#: Table 2: NDT1-stitch, single-session (from scratch) and pretrained on 34 sessions, fine-tuned.
PAPER_TABLE2 = _rows({
    "Single-session, Temporal": (0.55, 0.17, -0.49, 0.18, 0.87, 0.65),
    "Single-session, MtM (prompted)": (1.00, 0.28, 0.70, 0.83, 0.85, 0.67),
    "Multi-session, Temporal": (0.79, 0.43, -0.08, 0.34, 0.89, 0.67),
    "Multi-session, MtM (prompted)": (1.11, 0.46, 0.85, 0.96, 0.88, 0.68),
})
#: Table 5: NDT2, single-session and pretrained on 34 sessions, fine-tuned.
PAPER_TABLE5 = _rows({
    "Single-session, Random token": (-0.87, 0.35, -0.99, -0.75, 0.84, 0.65),
    "Single-session, MtM (prompted)": (0.97, 0.36, 0.64, 0.84, 0.85, 0.67),
    "Multi-session, Random token": (0.26, 0.38, -0.49, -0.39, 0.89, 0.66),
    "Multi-session, MtM (prompted)": (1.01, 0.34, 0.71, 0.87, 0.87, 0.67),
})
#: Table 6: behaviour decoded under each prompt at inference (NDT1-stitch MtM, pretrained + fine-tuned).
PAPER_TABLE6 = _rows({
    "Neuron": (0.88, 0.68),
    "Causal": (0.89, 0.68),
    "Intra-region": (0.88, 0.68),
    "Inter-region": (0.88, 0.68),
}, ("choice", "whisker_me"))
#: Table 7: mask ratio, NDT1 single-session: {masking: {ratio: {activity task: bps}}}. The paper
#: reports causal and inter-region at one value for every ratio ("same").
PAPER_TABLE7 = {
    name: {ratio: dict(zip(ACTIVITY, cells)) for ratio, cells in zip((0.1, 0.3, 0.6), by_ratio)}
    for name, by_ratio in {
        "Temporal (baseline)": ((0.87, 0.73, -0.19, 0.44), (1.21, 0.88, 0.31, 0.52), (0.92, 0.88, 0.42, 0.56)),
        "Neuron": ((1.41, -0.17, 0.29, 0.55), (1.38, -0.08, 0.27, 0.79), (1.25, 0.02, 0.66, 1.10)),
        "Causal": ((0.92, 0.82, 0.14, 0.46),) * 3,
        "Intra-region": ((-3.79, -0.76, 0.96, -4.06), (-3.62, -0.60, 0.86, -3.80), (-2.18, -0.33, 0.43, -2.33)),
        "Inter-region": ((1.12, 0.49, -0.07, 1.14),) * 3,
        "MtM (prompted)": ((1.31, 0.79, 0.92, 1.17), (1.24, 0.74, 0.77, 1.08), (0.93, 0.83, 0.71, 0.88)),
    }.items()
}
