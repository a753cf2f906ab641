"""tuner's DQN against Stable-Baselines3's at identical hyperparameters, side by side in one run.

    pip install -e ".[bench]"
    python benchmarks/vs_sb3.py                  # the full comparison (about 20 minutes on 2 cores)
    python benchmarks/vs_sb3.py --steps 5000 --timing-seeds 1 --quality-seeds 2   # a quick look
    python benchmarks/vs_sb3.py --only rl_zoo --quality-seeds 20 --first-seed 20   # more seeds
    python benchmarks/vs_sb3.py --sb3-from benchmarks/results/vs_sb3_zoo20b_intel.json \
        --out benchmarks/results/vs_sb3_now20b.json   # tuner's side again, SB3's as recorded

Both sides use one torch thread, the CPU and the same malloc settings (tuner's keep_freed_memory,
set for the whole process before the first run). For each config, SB3 and tuner (one seed per
run) alternate seed by seed, so machine noise hits both alike. Then tuner trains the quality seeds as
one batch, and K=8 for the batching cost. Every trained policy is scored by the same greedy
evaluator: `--eval-episodes` episodes per seed from the same fixed reset seeds. Both sides train
seeds --first-seed, --first-seed + 1, ...; with 10 or more quality seeds the table adds whether
the two sides' returns differ (Mann-Whitney U, and Fisher's exact test on seeds that solve).
With --sb3-from, SB3 is not run: its returns come from that earlier output (same steps, seeds
and episodes, which it checks), and tuner trains only the quality seeds, for when tuner's
trainer changed rounding and SB3 did not; no speed is compared then.
The floor is a plain PyTorch MLP's forward+backward+Adam step (same network and batch) in a tight
loop, times the gradient steps: what the learning alone costs with no env, replay or target.
Prints a table and writes benchmarks/results/vs_sb3.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from tuner.config import DQNConfig, load_config
from tuner.dqn import evaluate, keep_freed_memory, train
from tuner.envs import EVAL_SEED

ROOT = Path(__file__).resolve().parent.parent


def configs(steps: int) -> dict[str, tuple[DQNConfig, dict]]:
    """Each benchmark config as a DQNConfig and as SB3 DQN keyword arguments."""
    zoo = load_config(ROOT / "studies/configs/rl_zoo_cartpole.yaml").replace(
        total_steps=steps, eval_every=0, epsilon_decay_steps=int(0.16 * steps)
    )
    zoo_sb3 = dict(
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
    )
    default = DQNConfig(
        total_steps=steps,
        learning_rate=1e-4,
        batch_size=32,
        replay_size=1_000_000,
        learning_starts=100,
        train_frequency=4,
        gradient_steps=1,
        target_update_interval=10_000,
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_steps=int(0.1 * steps),
        hidden_sizes=(64, 64),
        loss="huber",
        grad_clip_norm=10.0,
        eval_every=0,
    )
    default_sb3 = dict(policy_kwargs=dict(net_arch=[64, 64]))  # everything else is SB3's default
    return {"rl_zoo": (zoo, zoo_sb3), "sb3_default": (default, default_sb3)}


def sb3_returns(model, episodes: int, env_id: str = "CartPole-v1") -> np.ndarray:
    """SB3's greedy policy on the same fixed-seed episodes as tuner's evaluator."""
    envs = [gym.make(env_id) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=EVAL_SEED + j)[0] for j, env in enumerate(envs)])
    total, active = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while active.any():
        actions, _ = model.predict(obs, deterministic=True)
        for i in np.flatnonzero(active):
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            total[i] += reward
            active[i] = not (terminated or truncated)
    return total


def run_sb3(
    kwargs: dict, steps: int, seed: int, episodes: int, env_id: str = "CartPole-v1"
) -> dict:
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", env_id, seed=seed, device="cpu", **kwargs)
    start = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "grad_steps": int(model._n_updates),
        "return": float(sb3_returns(model, episodes, env_id).mean()),
    }


def run_tuner(config: DQNConfig, seeds: int, episodes: int) -> dict:
    result = train(config, seeds=seeds, device="cpu")
    returns = evaluate(result.network, config.env, episodes).mean(1)
    return {
        "wall": result.wall_seconds,
        "grad_steps": result.gradient_steps,
        "returns": returns.tolist(),
    }


def floor_seconds(config: DQNConfig, repeats: int = 2000) -> float:
    """Seconds of one plain forward+backward+Adam step of the same MLP and batch."""
    sizes = [4, *config.hidden_sizes, 2]
    layers: list[torch.nn.Module] = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(i, o), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    obs = torch.randn(config.batch_size, 4)
    actions = torch.randint(0, 2, (config.batch_size, 1))
    targets = torch.randn(config.batch_size)

    def step() -> None:
        q = net(obs).gather(1, actions).squeeze(1)
        loss = torch.nn.functional.smooth_l1_loss(q, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(100):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def solved(returns: list[float]) -> int:
    return int(sum(r >= 475 for r in returns))


def differ(sb3: list[float], ours: list[float]) -> dict:
    """Two-sided p-values: do the returns differ, and does the share of seeds that solve?"""
    from scipy.stats import fisher_exact, mannwhitneyu

    table = [[solved(sb3), len(sb3) - solved(sb3)], [solved(ours), len(ours) - solved(ours)]]
    return {
        "mann_whitney_p": float(mannwhitneyu(sb3, ours, alternative="two-sided").pvalue),
        "fisher_p": float(fisher_exact(table).pvalue),
    }


def write(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


def recorded_runs(path: Path, steps: int, episodes: int) -> tuple[int, dict]:
    """(first seed, configs) of an earlier output, checked against this run's steps and episodes
    (outputs written before those were recorded used the defaults: first seed 0, 100 episodes)."""
    data = json.loads(path.read_text())
    scored = data.get("eval_episodes", 100)
    if data["steps"] != steps or scored != episodes:
        print(
            f"{path} trained {data['steps']:,} steps and scored {scored} episodes a seed; pass "
            f"--steps {data['steps']} --eval-episodes {scored} to compare with it",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return data.get("first_seed", 0), data["configs"]


def tuner_against_recorded_sb3(args: argparse.Namespace) -> None:
    """tuner's quality seeds trained again, against SB3's returns from an earlier output."""
    first, recorded = recorded_runs(args.sb3_from, args.steps, args.eval_episodes)
    report: dict = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "steps": args.steps,
        "eval_episodes": args.eval_episodes,
        "first_seed": first,
        "sb3_from": args.sb3_from.name,
        "configs": {},
    }
    print(f"SB3's returns from {args.sb3_from}: seeds from {first}, SB3 not run")
    for name, (config, _) in configs(args.steps).items():
        if name not in recorded or (args.only and name != args.only):
            continue
        sb3 = recorded[name]["sb3"]
        n = len(sb3["returns"])
        before = recorded[name]["tuner_batch"]["returns"]
        now = run_tuner(config.replace(seed=first), n, args.eval_episodes)
        report["configs"][name] = {
            "sb3": sb3,
            "tuner_batch": {"seeds": n, "wall": now["wall"], "returns": now["returns"]},
            "tuner_batch_recorded": {"seeds": n, "returns": before},
        }
        print(
            f"\n{name}, seeds {first}-{first + n - 1}, {args.steps:,} steps, greedy returns over "
            f"{args.eval_episodes} episodes; tuner's {n} seeds trained as one batch in "
            f"{now['wall']:.1f} s\n"
        )
        print(f"{'side':28} {'mean return':>11} {'seeds>=475':>10}  per seed")
        for side, returns in (
            ("SB3 (recorded)", sb3["returns"]),
            ("tuner, recorded", before),
            ("tuner, this trainer", now["returns"]),
        ):
            per_seed = " ".join(f"{r:.1f}" for r in returns)
            print(f"{side:28} {np.mean(returns):11.1f} {solved(returns):>7}/{n}  {per_seed}")
        same = sum(a == b for a, b in zip(before, now["returns"]))
        print(f"tuner's returns the same as recorded, to the digit: {same} of {n} seeds")
        if n >= 10:
            tests = differ(sb3["returns"], now["returns"])
            report["configs"][name]["tests"] = tests
            print(
                f"this trainer against SB3: Mann-Whitney U p {tests['mann_whitney_p']:.2f}, "
                f"Fisher exact p {tests['fisher_p']:.2f}"
            )
    write(args.out, report)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--timing-seeds", type=int, default=3)
    p.add_argument("--quality-seeds", type=int, default=5)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--first-seed", type=int, default=0, help="both sides' first training seed")
    p.add_argument("--only", choices=["rl_zoo", "sb3_default"], default=None)
    p.add_argument(
        "--sb3-from", type=Path, default=None, help="an earlier output: SB3's returns from there"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_sb3.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.sb3_from is not None:
        tuner_against_recorded_sb3(args)
        return
    # tuner's train() sets glibc's malloc to keep freed memory, for the whole process; set it
    # before SB3's first seed so that both sides run under the same allocator from the start
    keep_freed_memory()
    n_sb3 = max(args.timing_seeds, args.quality_seeds)
    report: dict = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "steps": args.steps,
        "eval_episodes": args.eval_episodes,
        "first_seed": args.first_seed,
        "configs": {},
    }
    rows = []
    for name, (config, sb3_kwargs) in configs(args.steps).items():
        if args.only and name != args.only:
            continue
        sb3, ours_one = [], []
        first = args.first_seed
        config = config.replace(seed=first)
        for seed in range(first, first + n_sb3):  # alternate: SB3 seed s, then tuner seed s
            sb3.append(run_sb3(sb3_kwargs, args.steps, seed, args.eval_episodes))
            if seed < first + args.timing_seeds:
                ours_one.append(run_tuner(config.replace(seed=seed), 1, args.eval_episodes))
            print(
                f"{name} seed {seed}: sb3 {sb3[-1]['wall']:.1f}s"
                + (
                    f", tuner {ours_one[-1]['wall']:.1f}s"
                    if seed < first + args.timing_seeds
                    else ""
                ),
                flush=True,
            )
        batch = run_tuner(config, args.quality_seeds, args.eval_episodes)
        timing_batch = (
            run_tuner(config, args.timing_seeds, args.eval_episodes)
            if args.timing_seeds != args.quality_seeds
            else batch
        )
        k8 = run_tuner(config, 8, 1)
        floor = floor_seconds(config) * ours_one[0]["grad_steps"]

        sb3_wall = float(np.mean([r["wall"] for r in sb3[: args.timing_seeds]]))
        one_wall = float(np.mean([r["wall"] for r in ours_one]))
        sb3_returns_q = [r["return"] for r in sb3[: args.quality_seeds]]
        entry = {
            "sb3": {
                "wall_per_seed": sb3_wall,
                "grad_steps": sb3[0]["grad_steps"],
                "returns": sb3_returns_q,
            },
            "tuner_one_seed": {"wall_per_seed": one_wall, "grad_steps": ours_one[0]["grad_steps"]},
            "tuner_batch": {
                "seeds": args.quality_seeds,
                "wall": batch["wall"],
                "returns": batch["returns"],
            },
            "tuner_timing_batch": {"seeds": args.timing_seeds, "wall": timing_batch["wall"]},
            "tuner_k8_wall": k8["wall"],
            "floor_seconds": floor,
            "ratios": {
                "speed_one_seed_vs_sb3": sb3_wall / one_wall,
                f"speed_{args.timing_seeds}_seeds_batched_vs_sb3_sequential": sb3_wall
                * args.timing_seeds
                / timing_batch["wall"],
                "tuner_one_seed_over_floor": one_wall / floor,
                "k8_over_k1": k8["wall"] / one_wall,
            },
        }
        report["configs"][name] = entry
        rows.append(
            (name, config, sb3_wall, sb3[0]["grad_steps"], sb3_returns_q, one_wall, batch, entry)
        )

    print(
        f"\nCartPole-v1, {args.steps:,} env steps per seed, 1 torch thread, CPU; returns: greedy, "
        f"{args.eval_episodes} episodes per seed\n"
    )
    head = f"{'config':12} {'side':22} {'wall s/seed':>11} {'steps/s':>9} {'grad steps':>10} {'mean return':>11} {'seeds>=475':>10}"
    print(head)
    print("-" * len(head))
    for name, _, sb3_wall, sb3_grads, sb3_ret, one_wall, batch, entry in rows:
        n = args.quality_seeds
        print(
            f"{name:12} {'SB3 DQN':22} {sb3_wall:11.1f} {args.steps / sb3_wall:9.0f} {sb3_grads:10,} "
            f"{np.mean(sb3_ret):11.1f} {solved(sb3_ret):>7}/{n}"
        )
        print(
            f"{name:12} {'tuner, 1 seed a run':22} {one_wall:11.1f} {args.steps / one_wall:9.0f} "
            f"{entry['tuner_one_seed']['grad_steps']:10,} {'':>11} {'':>10}"
        )
        print(
            f"{name:12} {f'tuner, {n} seeds batched':22} {batch['wall'] / n:11.1f} "
            f"{args.steps * n / batch['wall']:9.0f} {entry['tuner_one_seed']['grad_steps']:10,} "
            f"{np.mean(batch['returns']):11.1f} {solved(batch['returns']):>7}/{n}"
        )
    print()
    for name, *_, entry in rows:
        for key, value in entry["ratios"].items():
            print(f"{name:12} {key:45} {value:6.2f}x")
        print(
            f"{name:12} {'floor (plain PyTorch steps x grad steps)':45} {entry['floor_seconds']:6.1f}s"
        )
        if args.quality_seeds >= 10:
            tests = differ(entry["sb3"]["returns"], entry["tuner_batch"]["returns"])
            entry["tests"] = tests
            print(
                f"{name:12} {'returns differ? Mann-Whitney U p':45} {tests['mann_whitney_p']:6.2f}\n"
                f"{name:12} {'seeds that solve differ? Fisher exact p':45} {tests['fisher_p']:6.2f}"
            )
    write(args.out, report)


if __name__ == "__main__":
    main()
