"""Meta-training on a real Ray cluster: a head and a separate worker node started here (`ray start`,
token authentication on, every address given to Ray is 127.0.0.1), `vsml-gym train` joining it
with 2 actors, and runs that lose an actor, or the whole worker node, mid-run and are resumed.

Ray 2.60 advertises a node started with `--node-ip-address=127.0.0.1` under the machine's own IP
(`ray._private.services.resolve_ip_for_localhost`) and binds its ports on every interface, so
the cluster's traffic stays on this machine but its ports are open while the test runs (seconds;
the token keeps others out). Every node runs in a session of its own; teardown kills what is left of
those sessions by their ids.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from agents.training import QUICK_CONFIG, load_checkpoint, load_config, make_trainer

START_SECONDS = 90  # a node that is not up by then has failed
RUN_SECONDS = 240


def _ports(count: int) -> list[int]:
    """`count` consecutive ports above a random base (Ray takes fixed ports and ranges)."""
    base = random.Random(os.getpid() ^ time.time_ns()).randrange(20_000, 60_000 - count)
    return list(range(base, base + count))


class LoopbackCluster:
    """A Ray head and worker nodes on this machine, each with `cpus` CPUs and its own ports."""

    def __init__(self, temp_dir: Path, cpus: int = 1) -> None:
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.temp_dir, self.cpus = temp_dir, cpus
        self.nodes: list[subprocess.Popen] = []  # the live `ray start`s, head first
        self.sessions: set[int] = set()  # every session started, live or killed: what teardown kills
        self.free_ports = _ports(160)
        port = self.free_ports.pop(0)
        self.address = f"127.0.0.1:{port}"
        self._start("head", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir / 'ray'}")
        self._wait_for_nodes(1)
        self.add_worker()

    def add_worker(self) -> None:
        self._start(f"worker{len(self.sessions)}", f"--address={self.address}")
        self._wait_for_nodes(len(self.nodes))

    def kill_worker(self) -> None:
        """SIGKILL every process of the newest worker node: the node is gone, as if its machine died."""
        worker = self.nodes.pop()
        for pid, _ in self._processes({worker.pid}):
            _kill(pid)
        worker.wait(timeout=10)

    def _node_ports(self) -> list[str]:
        """Fixed ports for one node's processes and 30 for its workers, taken from `free_ports`."""
        names = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")
        ports, self.free_ports = self.free_ports[:len(names) + 30], self.free_ports[len(names) + 30:]
        return ([f"--{name}={port}" for name, port in zip(names, ports)]
                + [f"--min-worker-port={ports[len(names)]}", f"--max-worker-port={ports[-1]}"])

    def _start(self, name: str, *args: str) -> None:
        command = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--node-ip-address=127.0.0.1",
                   f"--num-cpus={self.cpus}", "--object-store-memory=100000000", "--disable-usage-stats",
                   *args, *self._node_ports()]
        process = subprocess.Popen(command, env=self.env, stdout=(self.temp_dir / f"{name}.log").open("w"),
                                   stderr=subprocess.STDOUT, start_new_session=True)  # a session of its own
        self.nodes.append(process)
        self.sessions.add(process.pid)

    def _wait_for_nodes(self, count: int) -> None:
        probe = f"import ray; ray.init(address={self.address!r}, log_to_driver=False); " \
                "print(sum(n['Alive'] for n in ray.nodes()))"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and all(p.poll() is None for p in self.nodes):
            if self._head_listens():
                done = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
                                      timeout=START_SECONDS)
                if done.returncode == 0 and int(done.stdout.split()[-1]) >= count:
                    return
            time.sleep(1)
        logs = "\n".join(p.read_text()[-2000:] for p in self.temp_dir.glob("*.log"))
        raise RuntimeError(f"the Ray cluster did not reach {count} node(s):\n{logs}")

    def _head_listens(self) -> bool:
        host, port = self.address.split(":")
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex((host, int(port))) == 0

    def _processes(self, sessions: set[int] | None = None) -> list[tuple[int, str]]:
        """(pid, command) of every process in `sessions` (default: all this cluster started; Ray's
        worker processes get process groups of their own, but stay in their node's session)."""
        sessions = self.sessions if sessions is None else sessions
        listing = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
        rows = (line.split(None, 2) for line in listing.splitlines() if line.strip())
        return [(int(pid), args) for pid, sid, args in rows if int(sid) in sessions]

    def actor_pids(self) -> list[int]:
        """Processes of EvoTorch's evaluation actors."""
        return [pid for pid, args in self._processes() if args.startswith("ray::EvaluationActor")]

    def stop(self) -> None:
        for process in self.nodes:
            process.terminate()  # `ray start --block` stops its node's processes
        deadline = time.monotonic() + 20
        for process in self.nodes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid, _ in self._processes():  # whatever is left, by the session ids this cluster started
            _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="vsml_ray_", dir="/tmp") as folder:  # Ray's socket paths must be short
        started = LoopbackCluster(Path(folder))
        try:
            yield started
        finally:
            started.stop()


def tiny_overrides(out: Path, name: str, *extra: str) -> list[str]:
    return [f"output_dir={out}", f"name={name}", "learner.name=meta_rnn", "learner.options={hidden_size: 8}",
            "training.population_size=8", "training.episode_length=12", "evaluation.every=0", "checkpoint_every=1",
            *extra]  # the quick config's Sum Sign 7x7, as tests/test_training.py's Ray test


def train_command(out: Path, name: str, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "vsml_gym.cli", "train", str(QUICK_CONFIG), "--quiet"]
    for override in tiny_overrides(out, name, *extra):
        command += ["--set", override]
    return command


def single_process_center(out: Path, name: str, *extra: str) -> torch.Tensor:
    trainer = make_trainer(load_config(QUICK_CONFIG, tiny_overrides(out, name, *extra)), progress=False)
    trainer.run()
    return trainer.center()


def test_train_on_a_two_node_cluster_equals_the_single_process_run(cluster, tmp_path):
    command = train_command(tmp_path, "cluster", "training.iterations=2", "training.num_actors=2",
                            f"training.ray_address={cluster.address}")
    done = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=RUN_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["iteration"] == 2
    distributed = load_checkpoint(tmp_path / "cluster" / "checkpoint.pt")["params"]
    # the same data and initial states per member; batched kernels of another size round differently
    single = single_process_center(tmp_path, "single", "training.iterations=2")
    torch.testing.assert_close(distributed, single, atol=1e-5, rtol=0)


def start_then_break(cluster, tmp_path: Path, name: str, recipe: tuple[str, ...], breaks) -> tuple[dict, list[str]]:
    """Start `train` on the cluster, call `breaks()` after 3 logged iterations, and check that the
    run stops with one line (exit 1) and an intact checkpoint short of the end. Returns that
    checkpoint and the command."""
    command = train_command(tmp_path, name, *recipe)
    run = subprocess.Popen(command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / name / "log.jsonl"
    deadline = time.monotonic() + RUN_SECONDS
    while not (log.exists() and len(log.read_text().splitlines()) >= 3) and run.poll() is None:
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.1)
    assert run.poll() is None, run.communicate()
    breaks()
    out, err = run.communicate(timeout=RUN_SECONDS)
    assert run.returncode == 1, (out, err[-3000:])
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("vsml-gym train: stopped: a Ray actor was lost") and "--resume" in lines[-1], lines[-3:]
    assert "Traceback" not in err
    saved = load_checkpoint(tmp_path / name / "checkpoint.pt")  # intact, and short of the end
    assert 3 <= saved["iteration"] < ITERATIONS
    return saved, command


def resume_and_compare(cluster, tmp_path: Path, name: str, recipe: tuple[str, ...], command: list[str]) -> None:
    """--resume finishes, with the meta-parameters of the same run on the cluster uninterrupted."""
    resumed = subprocess.run(command + ["--resume"], env=cluster.env, capture_output=True, text=True,
                             timeout=RUN_SECONDS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = load_checkpoint(tmp_path / name / "checkpoint.pt")
    straight = subprocess.run(train_command(tmp_path, "straight", *recipe), env=cluster.env, capture_output=True,
                              text=True, timeout=RUN_SECONDS)
    assert straight.returncode == 0, straight.stderr[-3000:]
    uninterrupted = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    assert final["iteration"] == uninterrupted["iteration"] == ITERATIONS
    assert torch.equal(final["params"], uninterrupted["params"])


ITERATIONS = 150


def kill_recipe(cluster) -> tuple[str, ...]:
    return (f"training.iterations={ITERATIONS}", "training.episode_length=100", "training.population_size=16",
            "training.num_actors=2", f"training.ray_address={cluster.address}")


def test_a_killed_actor_stops_the_run_cleanly_and_resume_reaches_the_uninterrupted_result(cluster, tmp_path):
    """An actor's process killed mid-run. (Against a run in this process --resume would agree only
    to rounding, and rounding changes which data a member sees: stream ids hash the sampled values.)"""
    def kill_an_actor():
        victims = cluster.actor_pids()
        assert len(victims) == 2, victims
        os.kill(victims[0], signal.SIGKILL)

    recipe = kill_recipe(cluster)
    _, command = start_then_break(cluster, tmp_path, "killed", recipe, kill_an_actor)
    resume_and_compare(cluster, tmp_path, "killed", recipe, command)


def test_a_lost_worker_node_stops_the_run_cleanly_and_resume_on_a_new_node_reaches_the_same_result(cluster, tmp_path):
    """The worker node's every process killed mid-run (its machine gone); a new worker node joins
    and --resume ends where an uninterrupted run ends. Last in this file: it replaces the worker."""
    recipe = kill_recipe(cluster)
    _, command = start_then_break(cluster, tmp_path, "node_lost", recipe, cluster.kill_worker)
    cluster.add_worker()
    resume_and_compare(cluster, tmp_path, "node_lost", recipe, command)
