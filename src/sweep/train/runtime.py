"""Where and how a run executes: device, precision, threads, distributed ranks and stop signals."""

from __future__ import annotations

import atexit

import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from ..config import ConfigError, TrainConfig
from ..config.schema import is_auto
from ..exits import EXIT_INTERRUPTED, EXIT_STOPPED

CPU_COMPILE_MIN_FLOPS = 1e14  # runs long enough on CPU to repay the compile (README, Performance)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 means no autocast
    compile: bool | None  # None: train.compile=auto on CPU, decided per run by settle()
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def select(device: str, train: TrainConfig) -> Runtime:
    """Device, precision and compile for this config on this machine, without side effects; a clear error for
    what the machine lacks."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible; use device=cpu or device=auto")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    use_cuda = device == "cuda" or (is_auto(device) and torch.cuda.is_available())
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if use_cuda else torch.device("cpu")
    # auto: bf16 autocast on CUDA, and on CPUs with native bf16 matmuls (AVX512-BF16, AMX), where it measured
    # 1.01-2.5x fp32's tokens/s from gpt-6k to gpt-5m, never slower (README, Performance); elsewhere bf16 is
    # emulated and slower.
    if train.dtype == "bfloat16" and use_cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.dtype=bfloat16 but this GPU has no bf16 support; use train.dtype=float32")
    if is_auto(train.dtype):
        native = cuda_has_native_bf16() if use_cuda else cpu_has_native_bf16()
        dtype = torch.bfloat16 if native else torch.float32  # fp16 instead would need a loss scaler
    else:
        dtype = torch.bfloat16 if train.dtype == "bfloat16" else torch.float32
    compile_flag = str(train.compile).lower()
    # auto: always on CUDA; on CPU compiling costs seconds, so the trainer compiles only runs long enough to repay it.
    use_compile = (True if use_cuda else None) if is_auto(compile_flag) else compile_flag == "true"
    return Runtime(device=dev, dtype=dtype, compile=use_compile, rank=rank, world_size=world)


def cuda_has_native_bf16() -> bool:
    """Ampere or newer: bf16 tensor cores (older GPUs only emulate bf16, slower than fp32)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no emulation flag and answers for native support
        return torch.cuda.is_bf16_supported()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's AVX512-BF16 or AMX kernels)."""
    if not torch.backends.mkldnn.is_available():
        return False
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask (a SLURM allocation, a container's cpuset) and a cgroup CPU
    quota, as joblib counts them, so threads per cell and joblib's number of parallel cells agree; under SLURM no
    more than the job's cpus_per_task (a cluster that does not bind tasks to their CPUs leaves the mask whole)."""
    from joblib import cpu_count

    allotted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return max(1, min(cpu_count(), int(allotted)) if allotted.isdigit() else cpu_count())


def _export_slurm_ranks() -> None:
    """Under a submitit SLURM job with several tasks, each task is a DDP rank: set torchrun's variables."""
    under_slurm = os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
    if "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1 and under_slurm:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export()


def resolve(device: str, train: TrainConfig, parallel_jobs: int = 1) -> Runtime:
    """select(), then set the process up for it: CUDA device and TF32, torch threads, the process group."""
    _export_slurm_ranks()
    rt = select(device, train)
    if rt.device.type == "cuda":
        torch.cuda.set_device(rt.device)
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls on Ampere+: ~free speed, fp32 master weights
        torch.backends.cudnn.allow_tf32 = True
    else:
        # One thread per usable core, shared among the cells and ranks on this machine: more threads than cores
        # makes OpenMP's spinning barriers wait on descheduled threads, which costs far more than it gains.
        shared = max(1, usable_cpus() // max(1, parallel_jobs * rt.world_size))
        torch.set_num_threads(shared if is_auto(train.threads) else int(train.threads))
    if rt.world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if rt.device.type == "cuda" else "gloo")
        # Torn down before the interpreter's own teardown: gloo's threads still alive then can abort a rank that has
        # finished its run ("terminate called without an active exception", seen once in CI).
        atexit.register(_leave_process_group)
    return rt


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave_together(runtime: Runtime) -> None:
    """At the end of a run, every rank waits for the others, then the process group is torn down on all of them at
    once: a rank that left while the main rank was still writing the run's last files aborted at exit in CI ('terminate
    called without an active exception'), even with the group destroyed at exit."""
    if runtime.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """The best FLOP/s of a large square matmul in `dtype`: what the matmul units deliver here, the MFU baseline.
    Best of many single products, so a busy neighbour lowers it less than it lowers a mean."""
    n = 8192 if device.type == "cuda" else 2048  # big enough to saturate, small enough to time in well under 1 s
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    _sync(device)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def settle(runtime: Runtime, flops: float) -> Runtime:
    """train.compile=auto on CPU, which depends on the run: torch.compile only for runs of ≥ CPU_COMPILE_MIN_FLOPS.
    Compiling takes 10-30 s on 2 cores and needs a C++ toolchain that short cells should not depend on."""
    if runtime.compile is not None:
        return runtime
    return replace(runtime, compile=flops >= CPU_COMPILE_MIN_FLOPS)


def keep_started_dtype(runtime: Runtime, started: str | None, log) -> Runtime:
    """A resumed run keeps the precision train.dtype=auto chose when it started (config.yaml's runtime block), even
    on a machine whose auto choice differs, so the run does not change arithmetic half-way."""
    if started is None or started == runtime.dtype_name:
        return runtime
    dtype = getattr(torch, started)
    if dtype == torch.bfloat16 and runtime.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        log.warning("the run started in bfloat16, which this GPU lacks; going on in %s", runtime.dtype_name)
        return runtime
    log.warning("the run started in %s under train.dtype=auto; keeping it (auto here would be %s)", started,
                runtime.dtype_name)
    return replace(runtime, dtype=dtype)


def describe(runtime: Runtime) -> dict:
    """config.yaml's `runtime` block: what the `auto` settings became on this machine."""
    return {"device": str(runtime.device), "dtype": runtime.dtype_name, "compile": runtime.compile,
            "threads": torch.get_num_threads(), "world_size": runtime.world_size}


class StopRequest:
    """Turns stop signals into a flag the loop checks at step boundaries.

    After the run has checkpointed, `forward()` hands the signal to whoever handled it before us (submitit's
    requeue handler under SLURM), so preemption still requeues the job. Ctrl-C (SIGINT) stops at the next step
    boundary like the others; a second Ctrl-C (or any signal after the first) raises KeyboardInterrupt at once.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the host process
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, without a checkpoint (the last one stays)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.signum == signal.SIGINT else EXIT_STOPPED

    def requested(self, runtime: Runtime) -> bool:
        if runtime.world_size == 1:
            return self.signum is not None
        flag = torch.tensor([1.0 if self.signum is not None else 0.0], device=runtime.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops at the same step
        return bool(flag.item())

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def forward(self) -> bool:
        """Restore the previous handlers; re-deliver the signal if one of them is a real handler (not Python's
        SIGINT handler, which would only raise KeyboardInterrupt after the checkpoint)."""
        previous = self._previous.get(self.signum)
        self.uninstall()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.signum, None)
            return True
        return False
