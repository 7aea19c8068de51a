"""RLHF with PPO and a KL penalty to the SFT model, as in InstructGPT (Ouyang et al. 2022; Ziegler et al. 2019).

Four models: the policy (initialised from the SFT model, trained), the reference (a frozen copy of the SFT
model), the reward model (frozen; scores a whole conversation) and the value model (trained; a scalar per
token, initialised from the reward model, as InstructGPT does). Each step samples responses to a batch of
prompts, scores them, turns score and KL into per-token rewards, estimates advantages with GAE and takes
`ppo_epochs` passes of clipped policy and value updates over minibatches. The math is in ppo_core.py,
sampling in rollout.py.

Everything a step draws (prompts, samples, minibatch order) is seeded by (seed, step), so a run resumed from
its checkpoint continues as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from chatforge.errors import ChatforgeError
from chatforge.models.loading import check_model_dir, first_line, load_model, load_tokenizer
from chatforge.train import ppo_core as core
from chatforge.train.common import quiet_hf, save_config, use_bf16
from chatforge.train.likelihood_gate import LikelihoodGate, prompt_states, reply_stats
from chatforge.train.rollout import generate_baseline, left_pad, positions, sample
from chatforge.world.config import WORLD_FILE

# (prompts, responses) -> one float per response; prompts are the JSONL records, each with "messages"
ScoreFn = Callable[[list[dict], list[str]], list[float]]
ROLLOUTS = {"chatforge": sample, "generate": generate_baseline}


@dataclass
class PPOConfig:
    model: str  # the SFT model: the policy starts here and the KL penalty pulls towards it
    prompts: str  # JSONL, one {"messages": [...], ...} per line (chatforge's prompts_train.jsonl works)
    output_dir: str
    reward_model: str | None = None  # HF sequence-classification dir with num_labels=1
    value_model: str | None = None  # default: the reward model (or the policy's backbone with a reward_fn)
    steps: int = 100
    rollout_batch_size: int = 64  # responses sampled per step
    # responses per prompt in a rollout batch; above 1, each response's score is taken relative to the mean score of
    # the other responses to its prompt (RLOO's leave-one-out baseline): what is left is how much better this reply
    # is than the policy's others to the same prompt, free of how high the reward model scores that prompt at all
    samples_per_prompt: int = 1
    minibatch_size: int = 16  # samples per gradient step
    ppo_epochs: int = 4  # passes over each rollout batch
    learning_rate: float = 5e-5  # for chatforge's few-million-parameter models; 1e-5 barely moves them
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    kl_coef: float = 0.05  # β; the initial value when kl_target is set
    kl_target: float | None = None  # None: fixed β; else Ziegler et al.'s adaptive controller, KL per sequence
    kl_horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    whiten_advantages: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    max_prompt_length: int = 256  # longer prompts are left out
    # InstructGPT's "PPO-ptx": also maximise log-likelihood of pretraining text, so RLHF forgets less
    ptx_coef: float = 0.0
    # a text file whose documents end with <|endoftext|>, or conversations (.jsonl, e.g. the SFT demonstrations: the
    # policy keeps to them where the reward model cannot tell right from wrong, e.g. which fact a name has)
    ptx_data: str | None = None
    ptx_seq_len: int = 128
    # a likelihood_gate.safetensors from `chatforge reward` (saved beside its model): the reference model's
    # likelihood of a reply joins the reward model's score where the prompt asks for a fact or a sum
    # (train/likelihood_gate.py). It was fitted with this run's reference (the SFT model) and reward model
    likelihood_gate: str | None = None
    rollout: str = "chatforge"  # "chatforge" (rollout.sample) or "generate" (plain model.generate)
    precision: str = "auto"
    save_every: int = 20
    seed: int = 0


def check_config(cfg: PPOConfig, has_reward_fn: bool) -> None:
    if not has_reward_fn and not cfg.reward_model:
        raise ChatforgeError("PPO needs a reward model (reward_model) or a reward function")
    if cfg.rollout not in ROLLOUTS:
        raise ChatforgeError(f"unknown rollout '{cfg.rollout}' (choose from: {', '.join(ROLLOUTS)})")
    if cfg.ptx_coef > 0 and not cfg.ptx_data:
        raise ChatforgeError("ptx_coef > 0 needs ptx_data (a pretraining text file)")
    if cfg.ptx_coef > 0 and not Path(cfg.ptx_data).is_file():
        raise ChatforgeError(f"ptx data '{cfg.ptx_data}' not found")
    if cfg.likelihood_gate and has_reward_fn:
        raise ChatforgeError("likelihood_gate works with a reward model, not a reward function")
    if cfg.likelihood_gate and not Path(cfg.likelihood_gate).is_file():
        raise ChatforgeError(f"likelihood gate '{cfg.likelihood_gate}' not found")
    if cfg.temperature <= 0:
        raise ChatforgeError("PPO samples its responses: temperature must be > 0")
    for name in ("steps", "rollout_batch_size", "minibatch_size", "ppo_epochs", "max_new_tokens",
                 "samples_per_prompt"):
        if getattr(cfg, name) < 1:
            raise ChatforgeError(f"{name} must be at least 1")
    if cfg.rollout_batch_size % cfg.samples_per_prompt:
        raise ChatforgeError(f"rollout_batch_size ({cfg.rollout_batch_size}) must be a multiple of "
                             f"samples_per_prompt ({cfg.samples_per_prompt})")
    if cfg.kl_target is not None and cfg.kl_target <= 0:
        raise ChatforgeError("kl_target must be > 0 (or None for a fixed KL coefficient)")


def load_prompts(path: str, tokenizer, max_length: int) -> tuple[list[dict], list[list[int]]]:
    """The prompt records and their token ids (chat template with the assistant's turn opened)."""
    from chatforge.data.conversations import ROLES, read_records

    records, ids = [], []
    for line, r in read_records(Path(path)):
        messages = r.get("messages") if isinstance(r, dict) else None
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages):
            raise ChatforgeError(f"{path} line {line}: expected {{\"messages\": [{{\"role\", \"content\"}}, ...]}}")
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(tokens) <= max_length:
            records.append(r)
            ids.append(tokens)
    if not records:
        raise ChatforgeError(f"{path}: no prompts (of at most {max_length} tokens)")
    return records, ids


def load_classifier(path: str, device, what: str):
    """A sequence-classification model with one output (a reward model), frozen, in eval mode."""
    check_model_dir(path)
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise ChatforgeError(f"could not read {what} '{path}': {first_line(e)}") from e
    archs = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ChatforgeError(f"{what} '{path}' is not a sequence-classification model ({', '.join(archs) or '?'})")
    if config.num_labels != 1:
        raise ChatforgeError(f"{what} '{path}' has {config.num_labels} outputs; a reward model has 1 (num_labels=1)")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path).to(device)
    except Exception as e:  # noqa: BLE001
        raise ChatforgeError(f"could not load {what} '{path}': {first_line(e)}") from e
    return model.eval()


class ValueModel(torch.nn.Module):
    """V(prefix) at every position: a transformer backbone and a linear head on each hidden state."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, input_ids, attention_mask, position_ids):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               use_cache=False).last_hidden_state
        return self.head(hidden).squeeze(-1).float()


def nanmean(xs) -> float | None:
    """The mean of the numbers that are there: an oracle gives NaN (or None) for prompts it cannot judge."""
    xs = [float(x) for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


@functools.lru_cache(maxsize=4)
def permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(f"ppo-prompts-{seed}-{epoch}").shuffle(order)
    return tuple(order)


def prompt_batch(n: int, batch: int, step: int, seed: int) -> list[int]:
    """Prompt indices for a step (from 1): a fresh shuffle of all prompts per pass, so each is seen equally."""
    return [permutation(n, seed, i // n)[i % n] for i in range((step - 1) * batch, step * batch)]


def select(batch: dict, rows: torch.Tensor) -> dict:
    """Some rows of a rollout batch, without the prompt-padding and response-padding columns none of them use."""
    sub = {k: v[rows] for k, v in batch.items()}
    start = int(sub["prompt_mask"].sum(0).nonzero()[0])
    end = int(sub["mask"].sum(1).max())
    return {k: v[:, start:] if k.startswith("prompt") else v[:, :end] for k, v in sub.items()}


def model_inputs(b: dict) -> dict:
    """Prompt + response as one sequence; position ids count from each row's first real token."""
    attention = torch.cat([b["prompt_mask"], b["mask"]], dim=1)
    return {"input_ids": torch.cat([b["prompt_ids"], b["tokens"]], dim=1), "attention_mask": attention,
            "position_ids": positions(attention)}


class PPOTrainer:
    def __init__(self, cfg: PPOConfig, reward_fn: ScoreFn | None = None, oracle_fn: ScoreFn | None = None,
                 progress: bool = True):
        check_config(cfg, reward_fn is not None)
        quiet_hf()
        self.cfg, self.reward_fn, self.oracle_fn, self.progress = cfg, reward_fn, oracle_fn, progress
        self.out = Path(cfg.output_dir)
        self.policy, self.tok = load_model(cfg.model, train=True)
        self.device = self.policy.device
        self.records, self.prompt_ids = load_prompts(cfg.prompts, self.tok, cfg.max_prompt_length)
        self.ref = copy.deepcopy(self.policy).requires_grad_(False)
        from chatforge.models.generate import stop_ids

        self.stop = stop_ids(self.policy, self.tok)
        self.rm = self.rm_tok = None
        if reward_fn is None:  # a reward function replaces the reward model
            self.rm = load_classifier(cfg.reward_model, self.device, "reward model").requires_grad_(False)
            self.rm_tok = self.reward_tokenizer(cfg.reward_model)
        self.gate = None
        if cfg.likelihood_gate:
            self.gate = LikelihoodGate.load(cfg.likelihood_gate).to(self.device)
            if self.rm.get_input_embeddings().num_embeddings < len(self.tok):
                raise ChatforgeError("likelihood_gate: the reward model does not share the policy's vocabulary")
        self.value = self.value_model(cfg.value_model or (cfg.reward_model if reward_fn is None else None))
        self.params = [p for m in (self.policy, self.value) for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.kl = core.AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.kl_target \
            else core.FixedKLController(cfg.kl_coef)
        self.ptx = self.ptx_blocks() if cfg.ptx_coef > 0 else None
        self.bf16 = use_bf16(cfg.precision)
        self.log: list[dict] = []
        # no dropout anywhere: with it, log π at update time would differ from log π at sampling time
        for m in (self.policy, self.ref, self.value):
            m.eval()

    # --- the models ---

    def reward_tokenizer(self, path: str):
        """The reward model's own tokenizer and chat template if its directory has one, else the policy's."""
        # a separate object either way: its padding settings must not leak into the policy's tokenizer
        tok = load_tokenizer(path if (Path(path) / "tokenizer_config.json").is_file() else self.cfg.model)
        # right padding: the classifier's position ids then need no correction; the score is read at the
        # last non-pad token, so keep the conversation's end when it is too long
        tok.padding_side, tok.truncation_side = "right", "left"
        if self.rm.config.pad_token_id is None:
            self.rm.config.pad_token_id = tok.pad_token_id
        return tok

    def value_model(self, path: str | None) -> ValueModel:
        if path is None:  # the policy's backbone and a fresh head that predicts 0 everywhere
            head = torch.nn.Linear(self.policy.config.get_text_config().hidden_size, 1, bias=False)
            torch.nn.init.zeros_(head.weight)
            return ValueModel(copy.deepcopy(self.policy.base_model), head.to(self.device, self.policy.dtype))
        rm = load_classifier(path, self.device, "value model")
        if not hasattr(rm, "score"):
            raise ChatforgeError(f"value model '{path}': no 'score' head to apply at every token")
        if rm.get_input_embeddings().num_embeddings < len(self.tok):
            raise ChatforgeError(f"value model '{path}' does not share the policy's vocabulary "
                                 f"({rm.get_input_embeddings().num_embeddings} < {len(self.tok)} tokens)")
        return ValueModel(rm.base_model, rm.score)

    def ptx_blocks(self) -> torch.Tensor:
        """Pretraining text, or conversations (a .jsonl: the SFT demonstrations) in the policy's chat template."""
        from chatforge.train.pretrain import pack

        path, docs = Path(self.cfg.ptx_data), None
        if path.suffix == ".jsonl":
            from chatforge.data.conversations import load_conversations

            docs = [self.tok.apply_chat_template(m, tokenize=False) for m in load_conversations(path)]
        return torch.tensor(pack(self.tok, path, self.cfg.ptx_seq_len, docs), dtype=torch.long)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def policy_logprobs(self, model, b: dict, entropy: bool = False, untempered: bool = False):
        """log π(response token) [B, T] at the sampling temperature (and the entropy of π per token, and the
        log-probs at temperature 1, from the same forward)."""
        with self.autocast():
            logits = model(**model_inputs(b), use_cache=False, logits_to_keep=b["tokens"].shape[1] + 1).logits
        raw = logits[:, :-1].float()  # position t predicts response token t
        logits = raw / self.cfg.temperature
        out = (core.logprobs_from_logits(logits, b["tokens"]),)
        out += (core.entropy_from_logits(logits),) if entropy else ()
        out += (core.logprobs_from_logits(raw, b["tokens"]),) if untempered else ()
        return out if len(out) > 1 else out[0]

    @torch.no_grad()
    def reference_logprobs(self, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """log π_ref of the response tokens [B, T] at the sampling temperature (the KL penalty's) and at 1 (the
        likelihood gate's), one reference forward per minibatch for both."""
        parts = [self.policy_logprobs(self.ref, {k: v[rows] for k, v in b.items()}, untempered=True)
                 for rows in torch.arange(len(b["tokens"]), device=self.device).split(self.cfg.minibatch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def values(self, b: dict) -> torch.Tensor:
        """V before each response token [B, T]."""
        with self.autocast():
            v = self.value(**model_inputs(b))
        return v[:, -b["tokens"].shape[1] - 1:-1]

    @torch.no_grad()
    def score(self, records: list[dict], responses: list[str]) -> torch.Tensor:
        if self.reward_fn is not None:
            scores = self.reward_fn(records, responses)
        else:
            texts = [self.rm_tok.apply_chat_template(r["messages"] + [{"role": "assistant", "content": s}],
                                                     tokenize=False) for r, s in zip(records, responses)]
            limit = getattr(self.rm.config, "max_position_embeddings", None) or 100_000
            scores = []
            for i in range(0, len(texts), self.cfg.minibatch_size):
                enc = self.rm_tok(texts[i:i + self.cfg.minibatch_size], padding=True, truncation=True,
                                  max_length=limit, add_special_tokens=False, return_tensors="pt").to(self.device)
                with self.autocast():
                    out = self.rm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                  position_ids=positions(enc["attention_mask"]), use_cache=False)
                scores += out.logits[:, 0].float().tolist()
        if len(scores) != len(responses):
            raise ChatforgeError(f"the reward function gave {len(scores)} scores for {len(responses)} responses")
        return torch.tensor([float(s) for s in scores], device=self.device)

    @torch.no_grad()
    def likelihood_bonus(self, b: dict, ref_logprobs_t1: torch.Tensor | None = None) -> torch.Tensor:
        """The gate's term of the reward [B]: the reference's likelihood of each reply (temperature 1) where the
        prompt asks for a fact or a sum (train/likelihood_gate.py)."""
        if ref_logprobs_t1 is None:
            ref_logprobs_t1 = self.reference_logprobs(b)[1]
        with self.autocast():
            states = prompt_states(self.rm, b["prompt_ids"], b["prompt_mask"])
        return self.gate.bonus(states, *reply_stats(ref_logprobs_t1, b["mask"]))

    # --- one PPO step ---

    def step_seed(self, step: int) -> int:
        return self.cfg.seed * 1_000_003 + step

    def rollout(self, step: int) -> tuple[list[dict], dict, list[str]]:
        cfg = self.cfg
        k = cfg.samples_per_prompt  # each prompt k times, side by side
        idx = [i for i in prompt_batch(len(self.records), cfg.rollout_batch_size // k, step, cfg.seed)
               for _ in range(k)]
        prompt_ids, prompt_mask = left_pad([self.prompt_ids[i] for i in idx], self.tok.pad_token_id)
        prompt_ids, prompt_mask = prompt_ids.to(self.device), prompt_mask.to(self.device)
        with self.autocast():
            out = ROLLOUTS[cfg.rollout](self.policy, prompt_ids, prompt_mask, max_new_tokens=cfg.max_new_tokens,
                                        temperature=cfg.temperature, top_p=cfg.top_p, stop=self.stop,
                                        pad_id=self.tok.pad_token_id, seed=self.step_seed(step))
        responses = [self.tok.decode(t[m.bool()], skip_special_tokens=True).strip()
                     for t, m in zip(out.tokens, out.mask)]
        batch = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "tokens": out.tokens, "mask": out.mask}
        return [self.records[i] for i in idx], batch, responses

    @torch.no_grad()
    def evaluate(self, b: dict, scores: torch.Tensor, ref_logprobs: torch.Tensor | None = None) -> dict:
        """Old log-probs, reference log-probs (unless given), values, KL-penalised rewards and advantages, in place
        in `b`."""
        parts = defaultdict(list)
        for rows in torch.arange(len(scores), device=self.device).split(self.cfg.minibatch_size):
            sub = {k: v[rows] for k, v in b.items()}
            logp, entropy = self.policy_logprobs(self.policy, sub, entropy=True)
            parts["old_logprobs"].append(logp)
            parts["entropy"].append(entropy)
            if ref_logprobs is None:
                parts["ref_logprobs"].append(self.policy_logprobs(self.ref, sub))
            parts["old_values"].append(self.values(sub))
        b.update({k: torch.cat(v) for k, v in parts.items()})
        if ref_logprobs is not None:
            b["ref_logprobs"] = ref_logprobs
        rewards, kl = core.kl_penalty_rewards(b["old_logprobs"], b["ref_logprobs"], scores, b["mask"], self.kl.value)
        b["advantages"], b["returns"] = core.gae(rewards, b["old_values"], b["mask"], self.cfg.gamma, self.cfg.lam)
        if self.cfg.whiten_advantages:
            b["advantages"] = core.masked_whiten(b["advantages"], b["mask"])
        return {"kl": kl.mean().item(), "entropy": core.masked_mean(b.pop("entropy"), b["mask"]).item()}

    def update(self, b: dict, step: int) -> dict:
        cfg, stats = self.cfg, defaultdict(list)
        g = torch.Generator().manual_seed(self.step_seed(step))
        for _ in range(cfg.ppo_epochs):
            for rows in torch.randperm(len(b["tokens"]), generator=g).split(cfg.minibatch_size):
                mb = select(b, rows.to(self.device))
                logp = self.policy_logprobs(self.policy, mb)
                pg_loss, clip_frac, approx_kl = core.policy_loss(logp, mb["old_logprobs"], mb["advantages"],
                                                                 mb["mask"], cfg.cliprange)
                vf_loss, _ = core.value_loss(self.values(mb), mb["old_values"], mb["returns"], mb["mask"],
                                             cfg.cliprange_value)
                loss = pg_loss + cfg.vf_coef * vf_loss
                if self.ptx is not None:
                    x = self.ptx[torch.randint(len(self.ptx), (cfg.minibatch_size,), generator=g)].to(self.device)
                    with self.autocast():
                        ptx_loss = self.policy(input_ids=x, labels=x, use_cache=False).loss
                    loss = loss + cfg.ptx_coef * ptx_loss
                    stats["ptx_loss"].append(ptx_loss.item())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                stats["policy_loss"].append(pg_loss.item())
                stats["value_loss"].append(vf_loss.item())
                stats["clip_frac"].append(clip_frac.item())
                stats["approx_kl"].append(approx_kl.item())
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def step(self, step: int) -> dict:
        start = time.time()
        records, b, responses = self.rollout(step)
        time_generate = time.time() - start
        scores = self.score(records, responses)
        entry = {"step": step, "reward": scores.mean().item()}
        ref_logprobs = None
        if self.gate is not None:  # the reference's one forward serves the gate (T=1) and the KL penalty
            ref_logprobs, ref_logprobs_t1 = self.reference_logprobs(b)
            bonus = self.likelihood_bonus(b, ref_logprobs_t1)
            entry.update(rm_reward=entry["reward"], likelihood_bonus=bonus.mean().item())
            scores = scores + bonus
            entry["reward"] = scores.mean().item()
        if self.oracle_fn is not None:
            entry["oracle"] = nanmean(self.oracle_fn(records, responses))
        if self.cfg.samples_per_prompt > 1:
            scores = core.leave_one_out(scores, self.cfg.samples_per_prompt)
        entry["kl_coef"] = self.kl.value
        entry.update(self.evaluate(b, scores, ref_logprobs))
        entry.update(self.update(b, step))
        self.kl.update(entry["kl"], len(responses))
        total = time.time() - start
        entry.update(response_len=b["mask"].sum(1).float().mean().item(), time_generate=time_generate,
                     time_total=total, samples_per_s=len(responses) / total)
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in entry.items()}

    # --- checkpoints ---

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint" / "state.pt"

    def save_checkpoint(self, step: int) -> None:
        """Everything a resumed run needs, in one file replaced atomically: a kill mid-save leaves the old one."""
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {"step": step, "policy": self.policy.state_dict(), "value": self.value.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "kl": self.kl.state_dict(), "log": self.log,
                 "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                         "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)

    def resume(self) -> int:
        """Load the checkpoint if there is one; the step it was taken at (0: none)."""
        if not self.checkpoint.is_file():
            return 0
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl.load_state_dict(state["kl"])
        self.log = state["log"]
        torch.set_rng_state(state["rng"]["torch"].cpu())
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return state["step"]

    # --- the run ---

    def train(self) -> dict:
        cfg = self.cfg
        save_config(cfg, self.out)
        start_step = self.resume()
        # the log restarts from the checkpoint's copy: steps after it (before a kill) are done again
        log_path = self.out / "log.jsonl"
        log_path.write_text("".join(json.dumps(e) + "\n" for e in self.log))
        bar = task = None
        if self.progress:
            from chatforge.train.progress import progress_bar

            bar = progress_bar()
            bar.start()
            task = bar.add_task("ppo", total=cfg.steps, completed=start_step, info="")
        started = time.time()
        try:
            for step in range(start_step + 1, cfg.steps + 1):
                entry = self.step(step)
                self.log.append(entry)
                with open(log_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                if step % cfg.save_every == 0 or step == cfg.steps:
                    self.save_checkpoint(step)
                if bar:
                    bar.update(task, completed=step, info=f"reward {entry['reward']:+.3f} kl {entry['kl']:.3f}")
        finally:
            if bar:
                bar.stop()
        self.save_model()
        metrics = self.metrics(start_step, time.time() - started)
        (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def save_model(self) -> None:
        out = self.out / "model"
        self.policy.save_pretrained(str(out))
        self.tok.padding_side = "left"
        self.tok.save_pretrained(str(out))
        world = Path(self.cfg.model) / WORLD_FILE
        if world.is_file():  # the model keeps knowing which world it was trained in
            shutil.copy(world, out / WORLD_FILE)

    def metrics(self, resumed_from: int, seconds: float) -> dict:
        """The run's figures; final_* and mean_oracle average the last tenth of the steps (one batch is noisy)."""
        log, tail = self.log, self.log[-max(1, len(self.log) // 10):]
        total, generate = sum(e["time_total"] for e in log), sum(e["time_generate"] for e in log)
        samples = len(log) * self.cfg.rollout_batch_size
        m = {"steps": log[-1]["step"], "resumed_from": resumed_from, "prompts": len(self.records), "samples": samples,
             "reward_start": log[0]["reward"], "final_reward": nanmean(e["reward"] for e in tail),
             "final_kl": nanmean(e["kl"] for e in tail), "kl_coef": self.kl.value,
             "samples_per_s": samples / total, "generation_share": generate / total, "seconds": round(seconds, 1)}
        if self.oracle_fn is not None:
            m.update(oracle_start=log[0]["oracle"], mean_oracle=nanmean(e["oracle"] for e in tail))
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}

def ppo(config: PPOConfig, reward_fn: ScoreFn | None = None, oracle_fn: ScoreFn | None = None,
        progress: bool = True) -> dict:
    """Train a policy with PPO; the trained model lands in `output_dir/model`. Returns the run's metrics."""
    return PPOTrainer(config, reward_fn, oracle_fn, progress).train()
