"""``lgtutorial sweep``: design validation, a 2-worker sweep into Zarr, resume, failures, the check."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from lgtutorial.cli.main import main
from lgtutorial.sweep.design import sample_seed
from lgtutorial.sweep.parsing import load_design, parse_design
from lgtutorial.sweep.run import generate_sample, run_sweep
from lgtutorial.sweep.store import check_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep_small.yaml"
# two 2-phase references with clearly different volume fractions (0.35 and 0.66 for phase 1)
TINY = {"name": "tiny", "seed": 3, "references": ["ngrf-two-phase-simple", "ngrf-two-phase-dense-circles"],
        "theta": [0.0, 0.5, 1.0], "samples_per_point": 2, "shape": [32, 32], "model": "none"}
#: the tests that run the tiny design read its two references
NEEDS_TINY = pytest.mark.requires_data(*TINY["references"])
DATA_ARRAYS = ("microstructures", "volume_fractions", "target_volume_fractions", "autocorrelations",
               "weights", "point", "sample", "seed", "done")


def tiny(**changes) -> dict:
    raw = {**TINY, **changes}
    return {key: value for key, value in raw.items() if value is not None}


def assert_same_data(path_a, path_b) -> None:
    a, b = zarr.open_group(str(path_a), mode="r"), zarr.open_group(str(path_b), mode="r")
    for name in DATA_ARRAYS:
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    assert a.attrs["design"] == b.attrs["design"]


def fail_for_seed(row, *, seed, design, bad_seed):
    """A task that always fails for one sample (the others run normally)."""
    if seed == bad_seed:
        raise RuntimeError("injected failure")
    return generate_sample(row, seed=seed, design=design)


def fail_once(row, *, seed, design, marker):
    """A task that fails the first time it is called for ``marker``'s sample, then works."""
    if seed == int(Path(marker).stem) and not Path(marker).exists():
        Path(marker).write_text("failed once")
        raise RuntimeError("transient failure")
    return generate_sample(row, seed=seed, design=design)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def reference_store(client, tmp_path_factory):
    """One uninterrupted sweep of the tiny design; other tests compare with it (they are marked NEEDS_TINY)."""
    path = tmp_path_factory.mktemp("sweep") / "uninterrupted.zarr"
    return path, run_sweep(parse_design(tiny()), path, client=client, progress=False)


# -- designs ------------------------------------------------------------------------------------
def test_design_expands_points_samples_and_seeds():
    design = parse_design(tiny())
    assert design.weights == ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0))
    tasks = design.tasks()
    assert [t.index for t in tasks] == list(range(6)) and design.n_samples == 6
    assert [(t.point, t.sample) for t in tasks[:3]] == [(0, 0), (0, 1), (1, 0)]
    seeds = [t.seed for t in tasks]
    assert seeds == [sample_seed(3, t.point, t.sample) for t in tasks] and len(set(seeds)) == 6
    assert all(0 <= s < 2**63 for s in seeds)
    assert parse_design(tiny()).sha256 == design.sha256 != parse_design(tiny(seed=4)).sha256
    assert parse_design(tiny(shape=32)).shape == (32, 32)


def test_latin_hypercube_stratifies_the_weights():
    design = parse_design(tiny(theta=None, latin_hypercube=8))
    theta = np.array([w[1] for w in design.weights])
    assert sorted(np.floor(theta * 8).astype(int)) == list(range(8))  # one point in each eighth of [0, 1]
    assert np.allclose([sum(w) for w in design.weights], 1.0)
    assert parse_design(tiny(theta=None, latin_hypercube=8)).weights == design.weights
    assert parse_design(tiny(theta=None, latin_hypercube=8, seed=4)).weights != design.weights
    three = parse_design(tiny(theta=None, latin_hypercube=5,
                              references=[*TINY["references"], "ngrf-two-phase-elongated"]))
    weights = np.array(three.weights)
    assert weights.shape == (5, 3) and (weights >= 0).all() and np.allclose(weights.sum(1), 1.0)


@pytest.mark.parametrize("changes, message", [
    ({"samples_per_point": None}, r"missing field 'samples_per_point' \(expected a positive integer"),
    ({"model": None}, r"missing field 'model'"),
    ({"samples_per_point": 0}, r"'samples_per_point': expected a positive integer, got 0"),
    ({"samples_per_point": -2}, r"'samples_per_point': expected a positive integer, got -2"),
    ({"theta": [0.2, 1.5]}, r"'theta\[1\]': expected a number in \[0.0, 1.0\], got 1.5"),
    ({"theta": [-0.1]}, r"'theta\[0\]': expected a number in \[0.0, 1.0\], got -0.1"),
    ({"references": ["nbsa-proxy", "no-such-micrograph"]},
     r"'references\[1\]': unknown reference 'no-such-micrograph': expected a registry micrograph"),
    ({"references": None}, r"exactly one of 'references' .* and 'statistics'"),
    ({"statistics": ["missing.npy"]}, r"exactly one of 'references'"),
    ({"thetas": [0.5]}, r"unknown field\(s\) \['thetas'\]"),
    ({"theta": None, "weights": [[0.5, 0.6]]}, r"'weights\[0\]': expected 2 non-negative weights summing to 1"),
    ({"theta": None}, r"give exactly one of 'theta' \(2 sources\), 'weights' or 'latin_hypercube'"),
    ({"references": ["nbsa-proxy", "ngrf-two-phase-simple", "li2018-alloy"]}, r"'theta'.*exactly 2 sources"),
    ({"shape": [32, 1]}, r"'shape': expected an integer >= 2, got 1"),
    ({"summary_cutoff": 20}, r"'summary_cutoff': expected at most 15 for a 32x32 domain, got 20"),
    ({"sampler": {"n_levels": 20}}, r"'sampler.n_levels': not a setting for a GRF alone"),
    ({"sampler": {"segmentation": "otsu"}}, r"'sampler.segmentation': expected 'auto', 'preserve', 'quantile' or 'argmax', got 'otsu'"),
    ({"model": "no-such-model"}, r"'model': expected 'none', a registry checkpoint"),
    ({"model": "nbsa-proxy"}, r"'model': expected a checkpoint; 'nbsa-proxy' is a micrograph"),
    ({"seed": -1}, r"'seed': expected an integer >= 0, got -1"),
    ({"model": "nbsa-authors-checkpoint", "sampler": {"name": "quick"}}, r"'sampler.name': expected one of 'faithful', 'fast'"),
    ({"model": "nbsa-authors-checkpoint", "sampler": {"volume_fraction_shift": 2.0}},
     r"'sampler': --volume-fraction-shift \(volume_fraction_shift\): expected a number in \(-1, 1\)"),
    ({"device": "tpu"}, r"'device': expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'"),
])
def test_bad_designs_name_the_field_and_what_was_expected(changes, message):
    with pytest.raises(ValueError, match=message):
        parse_design(tiny(**changes))


def test_a_sweep_sampler_block_makes_the_refinement_options_generate_makes():
    from lgtutorial.sampling.settings import HybridSettings, RefinementOptions

    design = parse_design(tiny(model="nbsa-authors-checkpoint", sampler={"name": "faithful", "n_levels": 30,
                                                                         "sigma_c": 0.5, "padding": 8}))
    settings = HybridSettings(sampler="faithful", levels=30, sigma_c=0.5, padding=8)
    options = design.sampler.refinement()
    assert options == RefinementOptions.of(settings)
    assert options.sampler == "faithful" and options.levels == 30 and options.guard == RefinementOptions.guard
    assert options.volume_fraction_shift is None and options.step_lr is None  # what the model and sampler say


def test_design_files(tmp_path):
    design = load_design(EXAMPLE)
    assert design.name == "small" and design.model == "nbsa-authors-checkpoint" and design.n_samples == 6
    assert design.sampler.name == "fast" and design.sampler.n_levels is None and design.shape == (64, 64)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="a design must be a mapping"):
        load_design(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("seed: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_design(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="no such design file"):
        load_design(tmp_path / "absent.yaml")
    # statistics files are found relative to the design file
    np.save(tmp_path / "a.npy", np.zeros((2, 8, 8)))
    (tmp_path / "stats.yaml").write_text(yaml.safe_dump(tiny(references=None, statistics=["a.npy"], theta=None)))
    assert load_design(tmp_path / "stats.yaml").sources == (str((tmp_path / "a.npy").resolve()),)


# -- running on a 2-worker local cluster --------------------------------------------------------
@NEEDS_TINY
def test_a_sweep_fills_a_consistent_store(reference_store):
    path, result = reference_store
    assert result.complete and result.written == 6 and result.already_done == 0 and result.devices == ["cpu"]
    report = check_store(path)
    assert report["samples"] == 6 and report["points"] == 3 and report["phases"] == 2
    store = zarr.open_group(str(path), mode="r")
    labels = store["microstructures"][:]
    assert labels.shape == (6, 32, 32) and store["microstructures"].chunks == (1, 32, 32)
    assert set(np.unique(labels)) == {0, 1}
    # the end points follow the references: phase 1 at about 0.35 (theta = 0) and 0.66 (theta = 1)
    target = store["target_volume_fractions"][:, 1]
    assert target[0] == pytest.approx(0.3458, abs=3e-3) and target[-1] == pytest.approx(0.6635, abs=3e-3)
    assert target[0] < target[2] < target[-1]
    # volume-fraction preserving segmentation: every sample within one pixel of its target
    assert np.abs(store["volume_fractions"][:, 1] - target).max() <= 1 / 1024 + 1e-12
    auto = store["autocorrelations"][:]
    assert auto.shape == (6, 2, 9, 9) and np.allclose(auto[:, :, 4, 4], store["volume_fractions"][:], atol=1e-6)
    attrs = store.attrs.asdict()
    assert attrs["complete"] and attrs["failures"] == [] and len(attrs["runs"]) == 1
    assert attrs["runs"][0]["workers"] == 2 and attrs["runs"][0]["status"] == "ok"
    assert attrs["design"]["seed"] == 3 and len(attrs["design_sha256"]) == 64
    assert {"lgtutorial", "torch", "dask", "zarr"} <= set(attrs["provenance"]["versions"])
    assert [len(s["sha256"]) for s in attrs["provenance"]["sources"]] == [64, 64]
    assert attrs["provenance"]["model"] is None and attrs["provenance"]["model_sha256"] is None


@NEEDS_TINY
def test_the_same_design_gives_the_same_store(reference_store, client, tmp_path):
    result = run_sweep(parse_design(tiny()), tmp_path / "again.zarr", client=client, progress=False)
    assert result.complete
    assert_same_data(reference_store[0], tmp_path / "again.zarr")


@NEEDS_TINY
def test_an_interrupted_run_resumes_to_the_uninterrupted_store(reference_store, client, tmp_path):
    path, design = tmp_path / "resumed.zarr", parse_design(tiny())
    first = run_sweep(design, path, client=client, max_tasks=2, progress=False)
    assert not first.complete and first.written == 2 and first.check is None
    with pytest.raises(ValueError, match=r"4 of 6 samples are not done \(slots \[2, 3, 4, 5\]\)"):
        check_store(path)
    # a sample written but not marked done (killed mid-write) is redone, not trusted
    store = zarr.open_group(str(path), mode="r+")
    store["microstructures"][4] = np.ones((32, 32), np.uint8)
    second = run_sweep(design, path, client=client, resume=True, progress=False)
    assert second.complete and second.already_done == 2 and second.written == 4
    assert_same_data(reference_store[0], path)
    third = run_sweep(design, path, client=client, resume=True, progress=False)
    assert third.complete and third.written == 0 and third.already_done == 6
    assert [run["written"] for run in zarr.open_group(str(path), mode="r").attrs["runs"]] == [2, 4, 0]


@NEEDS_TINY
def test_resuming_with_another_design_or_without_resume_is_refused(reference_store, client, tmp_path):
    path = tmp_path / "copy.zarr"
    shutil.copytree(reference_store[0], path)
    with pytest.raises(ValueError, match=r"made from a different design \(fields that differ: seed\)"):
        run_sweep(parse_design(tiny(seed=4)), path, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"differ: samples_per_point"):
        run_sweep(parse_design(tiny(samples_per_point=3)), path, resume=True, progress=False)
    with pytest.raises(ValueError, match="already exists: resume it"):
        run_sweep(parse_design(tiny()), path, progress=False)
    assert_same_data(reference_store[0], path)  # untouched


@NEEDS_TINY
def test_failed_samples_are_reported_kept_out_and_redone_on_resume(reference_store, client, tmp_path):
    path, design = tmp_path / "failing.zarr", parse_design(tiny())
    bad = design.tasks()[3]
    task = functools.partial(fail_for_seed, bad_seed=bad.seed)
    result = run_sweep(design, path, client=client, task=task, retries=1, progress=False)
    assert not result.complete and result.written == 5
    assert [(f["index"], f["error"]) for f in result.failures] == [(3, "RuntimeError: injected failure")]
    store = zarr.open_group(str(path), mode="r")
    assert store.attrs["failures"] == result.failures and store.attrs["runs"][0]["status"] == "failed"
    assert store["done"][:].tolist() == [True, True, True, False, True, True]
    resumed = run_sweep(design, path, client=client, resume=True, progress=False)
    assert resumed.complete and resumed.written == 1 and resumed.failures == []
    assert_same_data(reference_store[0], path)


@NEEDS_TINY
def test_retries_recover_a_transient_failure(reference_store, client, tmp_path):
    design = parse_design(tiny())
    marker = tmp_path / f"{design.tasks()[1].seed}.marker"
    task = functools.partial(fail_once, marker=str(marker))
    result = run_sweep(design, tmp_path / "flaky.zarr", client=client, task=task, retries=1, progress=False)
    assert marker.exists() and result.complete and result.failures == []  # it did fail once, then succeeded
    assert_same_data(reference_store[0], tmp_path / "flaky.zarr")


@NEEDS_TINY
def test_the_check_finds_corrupted_samples(reference_store, tmp_path):
    path = tmp_path / "corrupt.zarr"
    shutil.copytree(reference_store[0], path)
    store = zarr.open_group(str(path), mode="r+")
    store["volume_fractions"][0] = [0.5, 0.5]
    store["microstructures"][5] = np.full((32, 32), 7, np.uint8)
    with pytest.raises(ValueError, match=r"sample 0: stored volume fractions \[0.5, 0.5\] differ") as error:
        check_store(path)
    assert "sample 5: labels outside [0, 2)" in str(error.value)


@NEEDS_TINY
def test_the_cli_runs_a_design_on_a_scheduler_address(reference_store, client, tmp_path, capsys):
    design_file = tmp_path / "tiny.yaml"
    design_file.write_text(yaml.safe_dump(tiny()))
    out = tmp_path / "cli.zarr"
    assert main(["sweep", str(design_file), "--output", str(out), "--scheduler", client.scheduler.address]) == 0
    printed = capsys.readouterr().out
    assert "dashboard: http" in printed and "consistency check passed" in printed
    assert_same_data(reference_store[0], out)
    assert main(["sweep", str(design_file), "--output", str(out)]) == 2
    assert "already exists: resume it (--resume)" in capsys.readouterr().err
    design_file.write_text(yaml.safe_dump(tiny(theta=[2.0])))
    assert main(["sweep", str(design_file), "--output", str(tmp_path / "bad.zarr")]) == 2
    assert "'theta[0]': expected a number in [0.0, 1.0], got 2.0" in capsys.readouterr().err


@pytest.mark.requires_data("nbsa-proxy", "nbsa-authors-checkpoint")
def test_a_hybrid_sweep_with_the_authors_model(client, tmp_path):
    design = parse_design(tiny(references=["nbsa-proxy"], theta=None, samples_per_point=2,
                               model="nbsa-authors-checkpoint", sampler={"n_levels": 20}, summary_cutoff=2))
    assert design.weights == ((1.0,),)
    result = run_sweep(design, tmp_path / "hybrid.zarr", client=client, progress=False)
    assert result.complete
    store = zarr.open_group(str(tmp_path / "hybrid.zarr"), mode="r")
    labels = store["microstructures"][:]
    assert not np.array_equal(labels[0], labels[1])  # two seeds, two samples
    assert store["target_volume_fractions"][0, 1] == pytest.approx(0.3726, abs=3e-3)
    # the volume-fraction posterior keeps the refined samples near the target
    assert np.abs(store["volume_fractions"][:, 1] - 0.3726).max() < 0.08
    assert len(store.attrs["provenance"]["model_sha256"]) == 64


def test_statistics_sources_are_checked_before_any_task(tmp_path):
    from lgtutorial.sweep.design import load_sources

    np.save(tmp_path / "not-statistics.npy", np.full((2, 8, 8), 0.5))
    design = parse_design(tiny(references=None, statistics=["not-statistics.npy"], theta=None, shape=None),
                          base=tmp_path)
    with pytest.raises(ValueError, match="must sum to v_p"):
        load_sources(design)


def test_local_gpu_workers_are_pinned_one_gpu_each(monkeypatch):
    from types import SimpleNamespace

    from lgtutorial.sweep.run import PinGPU

    plugin = PinGPU(["2", "5"])  # e.g. CUDA_VISIBLE_DEVICES=2,5 in the shell that started the sweep
    seen = []
    for name in (0, 1, 2):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset")
        plugin.setup(SimpleNamespace(name=name))
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["2", "5", "2"]


def test_a_sweep_sample_uses_the_named_sampler(monkeypatch, tmp_path):
    """A design's sampler.name reaches the generator (default 'fast', as for generate)."""

    import lgtutorial.sampling.hybrid as hybrid
    from lgtutorial.grf.material import MaterialStatistics
    from lgtutorial.sweep.run import generate_sample
    from lgtutorial.synthetic import lamellae

    stats = MaterialStatistics.from_microstructure(lamellae(32, period=6), name="stripes", periodic=True)
    np.save(tmp_path / "row.npy", stats.statistics_row().numpy())
    used = []
    original = hybrid.HybridGenerator.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        used.append(self.sampler_name)

    monkeypatch.setattr(hybrid.HybridGenerator, "__init__", spy)
    for sampler, expected in ((None, "fast"), ({"name": "faithful", "n_levels": 30}, "faithful")):
        raw = {"name": "s", "seed": 0, "statistics": [str(tmp_path / "row.npy")] * 2, "theta": [0.0],
               "samples_per_point": 1, "model": "lgtutorial-case1"}
        if sampler:
            raw["sampler"] = sampler
        design = parse_design(raw)
        before = len(used)
        result = generate_sample(stats.statistics_row(), seed=1, design=design)
        # (a sample that fails its guard is redone by a second, faithful generator: the first one counts)
        assert used[before] == expected and result["labels"].shape == (32, 32)
