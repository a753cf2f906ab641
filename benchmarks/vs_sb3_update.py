"""tuner's DQN update against Stable-Baselines3's on identical weights and identical batches.

    pip install -e ".[bench]"
    python benchmarks/vs_sb3_update.py               # RL Zoo's CartPole config, 3 seeds, ~1 min
    python benchmarks/vs_sb3_update.py --seeds 1 --phases 4   # a quick look

vs_sb3.py compares whole training runs, where every difference compounds through the policy and
the data it collects. This takes that loop away: SB3 first trains for `--data-steps` steps to
fill a real replay buffer (terminations and time limits included). Then, for each seed, SB3's
DQN (its own `train()`, optimizer and target copy) and tuner's (the `td_targets`,
`gradient_step` and `update_target` that `train()` calls) start from SB3's initial weights and
take the same batches, drawn from that buffer: `--phases` phases of `gradient_steps` steps, the
target network copied from the online one before each, as at RL Zoo's config.

Float rounding differs between the two (a batched matmul against nn.Linear, a fused Adam against
a for-each one), and a DQN amplifies any difference, so a third run gives the yardstick: tuner
again, from SB3's weights with every weight moved by one part in 10^7. If the tuner-SB3 gap
grows like the tuner-tuner one, the updates agree up to rounding; a gap already large after
the first phase would be a difference in the algorithm.
Prints a table and writes benchmarks/results/vs_sb3_update.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from vs_sb3 import configs  # this folder is on sys.path when a script in it runs

from tuner.dqn import gradient_step, make_optimizer, td_targets, update_target
from tuner.networks import BatchedQNetwork
from tuner.replay import Batch

ROOT = Path(__file__).resolve().parent.parent


def collect(steps: int, seed: int) -> dict[str, np.ndarray]:
    """A replay buffer's worth of real CartPole transitions from an SB3 run at RL Zoo's config."""
    _, kwargs = configs(steps)["rl_zoo"]
    model = DQN("MlpPolicy", "CartPole-v1", seed=seed, device="cpu", **kwargs)
    model.learn(steps)
    rb, n = model.replay_buffer, model.replay_buffer.pos
    return {
        "obs": rb.observations[:n, 0].astype(np.float32),
        "actions": rb.actions[:n, 0, 0].astype(np.int64),
        "next_obs": rb.next_observations[:n, 0].astype(np.float32),
        "rewards": rb.rewards[:n, 0].astype(np.float32),
        # SB3 bootstraps through time limits: a done that was a timeout is not terminal
        "terminal": (rb.dones[:n, 0] * (1 - rb.timeouts[:n, 0])).astype(np.float32),
    }


def tuner_network(state: dict[str, torch.Tensor], noise: float, seed: int) -> BatchedQNetwork:
    """A one-seed tuner network holding SB3's weights, each scaled by (1 + noise * N(0, 1))."""
    net = BatchedQNetwork([0], 4, 2, (256, 256))
    gen = torch.Generator().manual_seed(seed)
    ours = {}
    for i, layer in enumerate((0, 2, 4)):  # SB3's Sequential: Linear, ReLU, Linear, ReLU, Linear
        w, b = state[f"q_net.{layer}.weight"].T, state[f"q_net.{layer}.bias"][None]
        ours[f"layers.{i}.weight"] = w * (1 + noise * torch.randn(w.shape, generator=gen))
        ours[f"layers.{i}.bias"] = b * (1 + noise * torch.randn(b.shape, generator=gen))
    net.load_seed_state(ours)
    return net


def as_sb3(net: BatchedQNetwork) -> list[torch.Tensor]:
    """tuner's weights in SB3's parameter order and shapes."""
    out = []
    for w, b in net.layers:
        out += [w[0].T, b[0, 0]]
    return out


class Comparison:
    """One seed: SB3's DQN, tuner from SB3's initial weights, and tuner from those weights
    perturbed, each with its own target network and optimizer, fed the same batches."""

    def __init__(self, config, data: dict[str, np.ndarray], seed: int) -> None:
        _, kwargs = configs(config.total_steps)["rl_zoo"]
        self.config, self.data = config, data
        self.tensors = {k: torch.from_numpy(v) for k, v in data.items()}  # the same memory
        self.sb3 = DQN("MlpPolicy", "CartPole-v1", seed=seed, device="cpu", **kwargs)
        self.sb3.set_logger(configure(None, []))  # train() records its loss; learn() is not run
        state = self.sb3.policy.q_net.state_dict()
        self.nets = {
            "tuner": tuner_network(state, 0.0, seed),
            "tuner_perturbed": tuner_network(state, 1e-7, seed),
        }
        self.targets = {name: net.clone() for name, net in self.nets.items()}
        self.optimizers = {name: make_optimizer(config, net) for name, net in self.nets.items()}
        self.rng = np.random.default_rng([seed, 7])
        self.probe = torch.from_numpy(data["obs"][self.rng.permutation(len(data["obs"]))[:2000]])

    def batches(self) -> list[np.ndarray]:
        n, b = len(self.data["obs"]), self.config.batch_size
        return [self.rng.integers(0, n, b) for _ in range(self.config.gradient_steps)]

    def sb3_phase(self, indices: list[np.ndarray]) -> None:
        d, queue = self.tensors, iter(indices)

        def sample(batch_size: int, env=None) -> ReplayBufferSamples:
            i = next(queue)
            return ReplayBufferSamples(
                d["obs"][i],
                d["actions"][i, None],
                d["next_obs"][i],
                d["terminal"][i, None],
                d["rewards"][i, None],
            )

        policy = self.sb3.policy
        policy.q_net_target.load_state_dict(policy.q_net.state_dict())  # hard target update
        self.sb3.replay_buffer.sample = sample
        self.sb3.train(gradient_steps=len(indices), batch_size=self.config.batch_size)

    def tuner_phase(self, name: str, indices: list[np.ndarray]) -> None:
        online, target = self.nets[name], self.targets[name]
        idx = np.stack(indices)[:, None]  # [count, K=1, B]
        t = {k: torch.from_numpy(v[idx]) for k, v in self.data.items()}
        batch = Batch(
            obs=t["obs"],
            actions=t["actions"],
            returns=t["rewards"],
            next_obs=t["next_obs"],
            discounts=self.config.gamma * (1 - t["terminal"]),
            weights=None,
            indices=torch.from_numpy(idx),
        )
        with torch.inference_mode():
            update_target(target, online, self.config)
            targets = td_targets(online, target, batch, double_dqn=False)
            for j in range(len(indices)):
                gradient_step(
                    online,
                    self.optimizers[name],
                    self.config,
                    batch.obs[j],
                    batch.actions[j],
                    targets[j],
                )

    def measure(self) -> dict[str, float]:
        """Largest weight gap relative to the largest weight, largest Q gap, and the share of
        probe states where the greedy actions differ: tuner vs SB3, tuner vs perturbed tuner."""
        with torch.no_grad():
            sb3_w = torch.cat([p.reshape(-1) for p in self.sb3.policy.q_net.parameters()])
            sb3_q = self.sb3.policy.q_net(self.probe)
        tuner = {
            name: (torch.cat([p.reshape(-1) for p in as_sb3(net)]), net(self.probe[None])[0])
            for name, net in self.nets.items()
        }
        ours_w, ours_q = tuner["tuner"]
        out = {}
        for name, (w, q) in (("sb3", (sb3_w, sb3_q)), ("perturbed", tuner["tuner_perturbed"])):
            out[f"weights_vs_{name}"] = float((ours_w - w).abs().max() / w.abs().max())
            out[f"q_vs_{name}"] = float((ours_q - q).abs().max())
            out[f"actions_vs_{name}"] = float((ours_q.argmax(1) != q.argmax(1)).float().mean())
        out["q_scale"] = float(sb3_q.abs().max())
        return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--phases", type=int, default=10)
    p.add_argument("--data-steps", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_sb3_update.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    config, _ = configs(50_000)["rl_zoo"]
    data = collect(args.data_steps, seed=100)
    report = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transitions": len(data["obs"]),
        "terminal_share": float(data["terminal"].mean()),
        "seeds": {},
    }
    print(
        f"{len(data['obs'])} transitions from one SB3 run, "
        f"{data['terminal'].mean():.1%} terminal; {config.gradient_steps} gradient steps a phase"
    )
    print(
        f"{'seed':>4} {'phase':>5} {'grad steps':>10} | {'weights':>8} {'max |dQ|':>9} "
        f"{'actions':>7} | {'weights':>8} {'max |dQ|':>9} {'actions':>7} | {'max |Q|':>7}"
    )
    print(f"{'':>22} | {'tuner vs SB3':^27} | {'tuner vs perturbed tuner':^27} |")
    for seed in range(args.seeds):
        cmp = Comparison(config, data, seed)
        rows = [{"phase": 0, **cmp.measure()}]
        for phase in range(1, args.phases + 1):
            indices = cmp.batches()
            cmp.sb3_phase(indices)
            for name in cmp.nets:
                cmp.tuner_phase(name, indices)
            rows.append({"phase": phase, **cmp.measure()})
            r = rows[-1]
            print(
                f"{seed:>4} {phase:>5} {phase * config.gradient_steps:>10} | "
                f"{r['weights_vs_sb3']:>8.1e} {r['q_vs_sb3']:>9.1e} {r['actions_vs_sb3']:>7.2%} | "
                f"{r['weights_vs_perturbed']:>8.1e} {r['q_vs_perturbed']:>9.1e} "
                f"{r['actions_vs_perturbed']:>7.2%} | {r['q_scale']:>7.1f}",
                flush=True,
            )
        report["seeds"][seed] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
