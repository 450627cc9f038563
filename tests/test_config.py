"""Every config in configs/ composes, and bad values get clear errors before any work."""

import importlib.resources

import pytest
from omegaconf import OmegaConf

from sweep.config import ConfigError, compose, compose_raw
from sweep.config.naming import horizon_tag
from sweep.config.schema import is_auto

GROUPS = ("model", "data", "train", "schedule", "logger", "sweep")


def _options(group):
    return sorted(p.name[:-5] for p in importlib.resources.files("sweep.configs").joinpath(group).iterdir()
                  if p.name.endswith(".yaml"))


def _leaves(node: dict, prefix: tuple = ()):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_config_composes_into_the_values_it_sets(group, option):
    """Each option composes, and the RunConfig holds every value its file sets (under its group, or from the top for
    an `@package _global_` preset) and the group options it overrides: a composition that dropped or misrouted an
    option would leave the defaults there."""
    text = importlib.resources.files("sweep.configs").joinpath(group, f"{option}.yaml").read_text()
    spec = OmegaConf.to_container(OmegaConf.create(text))
    defaults = spec.pop("defaults", [])
    spec.pop("hydra", None)  # the launcher's sweep parameters: not part of a run's config
    given = {("data", "path"): __file__} if (group, option) == ("data", "local") else {}
    run = compose([f"{group}={option}", *(f"{'.'.join(k)}={v}" for k, v in given.items())])
    checked = 0
    for key, want in _leaves(spec if "@package _global_" in text else {group: spec}):
        got = run
        for part in key:
            got = got[part] if isinstance(got, dict) else getattr(got, part)  # a dict-valued key: tasks.weights
        want = given.get(key, want)
        assert got == want or (want is None and (got is None or is_auto(got))), (".".join(key), want, got)
        checked += 1
    for entry in defaults:  # e.g. `override /schedule: wsd`
        for choice, value in (entry.items() if isinstance(entry, dict) else ()):
            assert getattr(run, choice.rpartition("/")[2]).name == value, choice
            checked += 1
    assert checked


def test_default_run_name_and_directory_parts():
    run = compose(["model=gpt-100k", "train.tokens=2000000", "seed=3"])
    assert run.run_name == "gpt-100k_t2e6_s3"
    assert run.sweep.name == "single"
    assert compose(["model=gpt-1m", "train.flops=1e13"]).run_name == "gpt-1m_f1e13_s0"


def test_defining_overrides_extend_the_run_name_and_others_do_not():
    lr = compose(["train.lr=0.01", "train.tokens=1e6"]).run_name
    assert lr.endswith("_train.lr-0.01")
    plain = compose(["train.eval_every=7", "device=cpu", "train.tokens=1e6"]).run_name
    assert plain == "gpt-1m_t1e6_s0"


def test_horizon_tags():
    assert horizon_tag(None, 1e13, None) == "f1e13"
    assert horizon_tag(2.5e6, None, None) == "t2.5e6"
    assert horizon_tag(None, None, None) == "tpp20"



@pytest.mark.parametrize("overrides,message", [
    (["model.n_head=7"], "model.d_model=110 is not divisible by model.n_head=7"),
    (["device=tpu"], "device='tpu' is not one of"),
    (["train.lr=-1"], "train.lr must be positive"),
    (["schedule.min_lr_ratio=2"], "schedule.min_lr_ratio"),
    (["model.vocab_size=100"], "model.vocab_size=100 is smaller than"),
])
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose(overrides)


def test_unknown_model_names_the_options():
    with pytest.raises(Exception, match="gpt-1m"):
        compose(["model=gpt-7b"])


@pytest.mark.parametrize("launcher", ["slurm", "slurm_multinode", "submitit_slurm", "submitit_local", "joblib"])
def test_launchers_compose(launcher):
    cfg = compose_raw([f"hydra/launcher={launcher}", "sweep=isoflop"])
    expected = "slurm" if launcher.startswith("slurm") else launcher.split("_")[-1]  # slurm_multinode: slurm's
    assert expected in cfg.hydra.launcher._target_.lower()


def test_the_multinode_preset_is_the_slurm_launcher_with_several_ranks_per_cell():
    launcher = compose_raw(["hydra/launcher=slurm_multinode"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.sweep_slurm.SweepSlurmLauncher"
    assert launcher.nodes == 2 and launcher.tasks_per_node == launcher.gpus_per_node == 8
    assert launcher.max_num_timeout > 0 and launcher.wait is True  # the rest is slurm.yaml's


def test_slurm_config_requeues_on_preemption_and_timeout():
    launcher = compose_raw(["hydra/launcher=slurm"]).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s >= 60 and launcher.gpus_per_node == 1


def test_a_corpus_location_is_checked_before_launching(tmp_path, capsys):
    from sweep.cli import main

    assert main(["train", "data=local", f"out_dir={tmp_path}"]) == 2
    assert "data=local needs data.path" in capsys.readouterr().err
    assert main(["train", "data=local", f"data.path={tmp_path / 'missing.txt'}", f"out_dir={tmp_path}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing created


def test_a_setting_without_effect_is_reported(caplog):
    from sweep.launch import preflight

    with caplog.at_level("WARNING", logger="sweep.launch"):
        preflight(compose(["schedule=cosine", "schedule.decay_fraction=0.3", "train.tokens=1e6"]))
    assert "schedule.decay_fraction=0.3 has no effect with schedule=cosine" in caplog.text
    with pytest.raises(ConfigError, match="schedule=wsd needs schedule.decay_fraction"):
        compose(["schedule=wsd", "schedule.decay_fraction=null"])


def test_auto_is_the_one_spelling_of_derived_values():
    run = compose(["train.lr=null", "train.batch_tokens=auto", "model.vocab_size=auto"])
    assert (run.train.lr, run.train.batch_tokens, run.model.vocab_size) == ("auto", "auto", "auto")
    assert compose(["train.lr=0.01"]).train.lr == 0.01
    with pytest.raises(ConfigError, match="train.lr='fast' is not a number or auto"):
        compose(["train.lr=fast"])
    with pytest.raises(ConfigError, match="train.micro_batch=2.5 is not a whole number or auto"):
        compose(["train.micro_batch=2.5"])


def test_keys_that_do_not_define_a_cell_leave_its_name_alone():
    plain = compose(["train.tokens=1e6"]).run_name
    assert compose(["train.tokens=1e6", "train.nonfinite=skip", "train.max_skipped_steps=3"]).run_name == plain


def test_an_unquoted_unicode_value_gets_the_quoting_fix():
    with pytest.raises(ConfigError, match=r"quote the value, e.g. out_dir='/tmp/ünï'"):
        compose(["out_dir=/tmp/ünï"])
    assert compose(["out_dir='/tmp/ünï'"]).out_dir == "/tmp/ünï"


def test_a_horizon_below_half_a_step_is_refused():
    from sweep.train.plan import check_plan

    with pytest.raises(ConfigError, match="less than half of one optimizer step"):
        check_plan(compose(["train.flops=1", "device=cpu"]))


def test_an_unknown_key_suggests_the_nearest_one():
    with pytest.raises(ConfigError, match="did you mean train.lr"):
        compose(["train.lrr=0.1"])
