"""Every config in configs/ composes, and bad values get clear errors before any work."""

import importlib.resources

import pytest

from sweep.cli import compose, horizon_tag
from sweep.config import ConfigError

GROUPS = ("model", "data", "train", "schedule", "logger", "sweep")


def _options(group):
    return sorted(p.name[:-5] for p in importlib.resources.files("sweep.configs").joinpath(group).iterdir()
                  if p.name.endswith(".yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_config_composes(group, option):
    extra = [f"data.path={__file__}"] if (group, option) == ("data", "local") else []
    run = compose([f"{group}={option}", *extra])
    assert run.model.d_model % run.model.n_head == 0
    assert run.run_name.startswith(run.model.name)


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
    (["model.n_head=5"], "model.d_model=128 is not divisible by model.n_head=5"),
    (["device=tpu"], "device='tpu' is not one of"),
    (["train.lr=-1"], "train.lr must be positive"),
    (["data=local"], "data=local needs data.path"),
    (["schedule.min_lr_ratio=2"], "schedule.min_lr_ratio"),
    (["model.vocab_size=100"], "model.vocab_size=100 is smaller than"),
])
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose(overrides)


def test_unknown_model_names_the_options():
    with pytest.raises(Exception, match="gpt-1m"):
        compose(["model=gpt-7b"])


@pytest.mark.parametrize("launcher", ["slurm", "submitit_slurm", "submitit_local", "joblib"])
def test_launchers_compose(launcher):
    from sweep.cli import _compose_raw

    cfg = _compose_raw([f"hydra/launcher={launcher}", "sweep=isoflop"])
    assert launcher.split("_")[-1].lower() in cfg.hydra.launcher._target_.lower()


def test_slurm_config_requeues_on_preemption_and_timeout():
    from sweep.cli import _compose_raw

    launcher = _compose_raw(["hydra/launcher=slurm"]).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s >= 60 and launcher.gpus_per_node == 1
