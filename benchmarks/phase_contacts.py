"""Which phases touch: the chance that a pixel r px from phase a is of phase b, reference against GRF and hybrid.

For a fitted folder (``samples.npy``, ``grf.npy`` from ``lgtutorial fit``) and its micrograph, per
pair of distinct phases: ``P(b at x + r | a at x) = f_ab(r) / v_a``, the cross-correlation of the
2-point statistics over the volume fraction, averaged over the four lags of length r along x and y
(the reference non-periodic, the samples periodic). A reference that keeps two phases apart (each
particle of one wrapped in a third phase) shows zeros at small r; a GRF cannot hold such an
exclusion, and the hybrid must push the particles apart.

    OMP_NUM_THREADS=2 python benchmarks/phase_contacts.py ngrf-three-phase-simple \
        lgtutorial-output/fit-registered/ngrf-three-phase-simple-30min \
        --output benchmarks/results/phase_contacts_three_phase_simple.md
"""

from __future__ import annotations

from pathlib import Path

from _report import emit_table, load_fitted

LAGS = (1, 2, 4, 8, 16)


def main(argv=None) -> None:
    from lgtutorial.fitting.checks import phase_contacts

    args, micro, meta, ensembles = load_fitted(__doc__.splitlines()[0], argv)
    folder = Path(args.folder)
    contacts = phase_contacts(micro, ensembles, meta["phases"], periodic=False, lags=LAGS)  # as fit's report
    lags = contacts.pop("lags")
    lines = [f"# Which phases touch: {args.micrograph}", "",
             f"`{folder}`; P(b at r | a): the chance that the pixel r px away (along x or y) from a pixel of phase a "
             "is of phase b, f_ab(r) / v_a from the 2-point statistics (the reference non-periodic, the samples "
             "periodic). Made by `benchmarks/phase_contacts.py`.", "",
             "| a | b | " + " | ".join(f"r = {r} px: ref / GRF / hybrid" for r in lags) + " |",
             "|---|---|" + "---|" * len(lags)]
    for pair, chances in contacts.items():  # "a -> b"
        cells = [" / ".join(f"{chances[m][k]:.3f}" for m in ("reference", "GRF", "hybrid")) for k in range(len(lags))]
        lines.append("| " + " | ".join(pair.split(" -> ")) + " | " + " | ".join(cells) + " |")
    emit_table("\n".join(lines), args.output)


if __name__ == "__main__":
    main()
