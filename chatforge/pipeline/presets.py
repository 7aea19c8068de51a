"""Pipeline presets: how big the world, the model and each training stage are for `chatforge demo`."""

from __future__ import annotations

from chatforge.errors import ChatforgeError

PIPELINE_PRESETS: dict[str, dict] = {
    # seconds: proves every stage runs; the model is too small to learn much
    "tiny": {
        "world": "tiny",
        "tokenizer": {"vocab_size": 1024},
        "pretrain": {"preset": "tiny", "epochs": 2.0, "seq_len": 128, "batch_size": 8, "learning_rate": 3e-3,
                     "save_every": 200},
        "midtrain": {"epochs": 1.0, "seq_len": 128, "batch_size": 8, "learning_rate": 1e-3, "warmup": 0,
                     "save_every": 200},
        "sft": {"epochs": 4.0, "batch_size": 8, "learning_rate": 3e-3, "drills": True, "save_every": 200},
        "compare": {"prompts": 48, "test_prompts": 24, "k": 3, "second_replies": 1, "max_new_tokens": 24, "chunk": 32},
        "reward": {"epochs": 1.0, "batch_size": 16, "learning_rate": 1e-3},
        "ppo": {"steps": 3, "rollout_batch_size": 16, "minibatch_size": 8, "max_new_tokens": 24, "save_every": 2,
                "likelihood_gate": True},
        "dpo": {"epochs": 1.0, "batch_size": 16, "learning_rate": 1e-3},
        "eval": {"max_new_tokens": 32},
        "winrate": {"samples": 1, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 32},
        "moderation": {"epochs": 2.0},
        # the tiny model writes attacks of 32 tokens at most: at 64 its attacker LM took most of these stages' time
        "redteam": {"queries": 48, "attackers": "templates,lm", "max_new_tokens": 32, "attacker_max_new_tokens": 32},
        # 3 rounds from the PPO model, 32 train attacks per attacker and 48 held-out ones per round, SFT on 200
        # replayed demonstrations + the new examples, 1 epoch each of SFT and DPO at the tiny preset's rates
        "adversarial": {"start": "ppo", "rounds": 3, "queries": 32, "heldout_queries": 48, "replay": 200,
                        "sft_epochs": 1.0, "sft_learning_rate": 3e-3, "sft_batch_size": 8, "dpo_epochs": 1.0,
                        "dpo_learning_rate": 1e-3, "dpo_batch_size": 16, "max_new_tokens": 32,
                        "attacker_max_new_tokens": 32},
    },
    # minutes on 2 CPU cores: a ~1.6M-parameter model that learns the world's facts and the assistant's manners
    "small": {
        "world": "small",
        "tokenizer": {"vocab_size": 2048},
        # short blocks, two epochs of a narrow model: more steps per FLOP (measured with bench/recipe_sweep.py).
        # Batches of 16 (lr 2.5e-3): on 2 cores a step of 8 costs ~100 ms, of 16 ~190 ms, so world → SFT eval takes
        # 7.3 min instead of 8.3, and the SFT model scored known facts 100, identity 100, harmful refusal 100 (batch 8:
        # 92.5, 90, 87.5) but tasks 7.5 (27.5). Learning rates of 3e-3 and above diverge, with or without warmup.
        # Not compiled: in the demo on a fresh machine (cold kernel cache) the compiled stage took 494 s, eager 476 s;
        # compiled only wins once its kernels are cached (367 s)
        # 2 epochs: at 1.85 (to pay for mid-training's ~40 s) the SFT model solved 25% of held-out tasks, not 40
        "pretrain": {"preset": "small", "epochs": 2.0, "seq_len": 128, "batch_size": 16, "learning_rate": 2.5e-3,
                     "weight_decay": 0.01, "save_every": 200},
        # no mid-training: its ~40 s pay for the task drills in SFT. (It was one pass over world/midtrain.txt, 60%
        # worksheets and 40% encyclopedia, at a decaying rate; a preset may still set it, see the tiny one)
        "midtrain": None,
        # embeddings frozen and a pretraining mix: fine-tuning keeps the names and facts no demonstration shows.
        # Task drills (world/drills.jsonl: 3000 exercises in the chat's form, half sorting, a quarter each adding and
        # subtracting, trained beside the demonstrations) teach the look-ups in the question the demonstrations are
        # too few for; they need the base model's previous-token head (models/presets.py). Measured (2 CPU cores,
        # 2026-11-27, pretraining seed 0; SFT task accuracy): 32.5 without either, 55 with the head alone (55 and 70
        # with sorting drills alone, before and after the head), 82.5 with both (sorting 8/9, sums 8/8, conversions
        # 7/7, counting 8/8, reversing 2/8), known facts 100; seed 1: 70. With eager attention, seeds 0 / 1: 72.5 / 70
        # (known facts 90 / 82.5)
        "sft": {"epochs": 3.0, "batch_size": 16, "learning_rate": 1e-3, "freeze_embeddings": True, "text_mix": 0.3,
                "drills": True, "save_every": 200},
        # InstructGPT's loop at toy scale: K=4 replies per prompt (3 from SFT, 1 from the base model) ranked by
        # 5 simulated raters
        "compare": {"prompts": 800, "test_prompts": 200, "k": 4, "second_replies": 1, "temperature": 0.8,
                    "max_new_tokens": 48},
        # one pass: a second one fits the raters better (4.5 instead of 8 points under the noise ceiling) but gives
        # PPO a reward model that is easier to game (measured: win rate vs SFT 0.39-0.43 instead of 0.45-0.46)
        "reward": {"epochs": 1.0, "batch_size": 32, "learning_rate": 3e-4},
        # a strong KL penalty and a small step: with β=0.05 and lr 1e-4 the policy collapsed onto one reply the reward
        # model overrates (KL 7 nats, oracle win rate vs SFT 0.29)
        # (2026-11-27, this recipe: β=0.05 over 60 steps 0.522; with PPO-ptx on the SFT demonstrations, ptx_source
        # "sft" and ptx_coef 1.0, 0.575 but known facts -9.4 and multi-turn -12.3 points: docs/RESULTS.md)
        # the reward: the reward model's score plus the SFT model's likelihood behind the gate the reward stage fits
        # (train/likelihood_gate.py; on the timed demo's comparisons 83.5% -> 89.1% on oracle pairs, known facts 0.62
        # -> 0.85, tasks 0.73 -> 0.96; rater gap 5.1 -> 3.5). The win rate it gives PPO is the reward model's alone
        # within noise (2026-11-27, on one run's SFT model: 0.508 vs 0.518; with beta 0.05 over 60 steps 0.312, with
        # ptx 0.503, beta 0.1 0.486, lr 1e-4 0.478): what it fixes is the reward, not the policy's drift under PPO.
        # samples_per_prompt 4 (RLOO's baseline on the scores), on the 17:34 demo's models: 0.500 (beta 0.2), 0.520
        # (beta 0.1: 23 W / 8 L, small talk -4.0), 0.501 (beta 0.05: ambiguous -8.1), 0.500 (beta 0.1, 60 steps)
        # The gate is off here (the reward stage still fits and reports it; `likelihood_gate: true` turns it on): with
        # it, PPO's known-fact accuracy rose 90 -> 97.5 on the eval's 40 but any DPO step from that model (12 benign
        # pairs alone at 1e-4; round 1's 36 pairs at 3e-5 took one) took those prompts back, so the rounds failed their
        # known-fact check (-7.5; 2026-11-27 evening, docs/RESULTS.md), and PPO's win rate was the same without it
        # (0.518 vs 0.516)
        # bench/bon_frontier.py: no PPO setting can reach 0.65 on this reward, gated or not (best of n peaks at 0.54)
        "ppo": {"steps": 30, "rollout_batch_size": 64, "minibatch_size": 16, "ppo_epochs": 2, "learning_rate": 5e-5,
                "kl_coef": 0.2, "temperature": 0.8, "max_new_tokens": 48, "save_every": 10, "likelihood_gate": False},
        "dpo": {"epochs": 0.5, "batch_size": 32, "learning_rate": 1e-4},
        "eval": {"max_new_tokens": 48},
        # beside the greedy head-to-head, a reply per prompt sampled as the web chat samples (T=0.8, top-p 0.95), ~20 s:
        # PPO's gain shows more there (on the 2026-11-27 23:48 run's models, 40 prompts per family and 2 draws: greedy
        # 0.523, sampled 0.552 with 121 W / 44 L, SFT's samples going wrong more often than PPO's)
        "winrate": {"samples": 1, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 48},
        "moderation": {"epochs": 2.0},
        # templates only in the small demo: the attacker LM doubled these stages' time (measured: redteam 107 s and
        # adversarial 190 s with it, on a busy 2-core machine) and found nothing the templates did not. The target
        # samples at T=1: greedy, the RLHF model refuses every attack (0/300), so nothing could be measured or learnt
        # campaigns send 256 attacks at a time: 1000 held-out attacks took 16.6 s in batches of 32, 9.9 s in 256
        "redteam": {"queries": 300, "attackers": "templates", "max_new_tokens": 48, "temperature": 1.0,
                    "batch_size": 256},
        # ~1.5 minutes on 2 cores: a round is a campaign of all 840 train-split template attacks and 1000 held-out
        # ones (the target sampling at T=1, where the RLHF model breaks 3-8% of the time; 1000 attacks place that
        # within ~±1.5 points), the held-out eval (greedy) and 200 more held-out prompts per family for task,
        # known-fact and benign-but-scary helpfulness (0.5 points a prompt; 1 in the eval's 100), then DPO from the
        # PPO model, 6 epochs at 1e-4 and beta 0.05 over every round's pairs so far, each success's chosen reply the
        # best of 4 of the target's own samples that the judge passes.
        # Measured on the small demo's PPO model (3 rounds, helpfulness on the 200-prompt check, 2026-11-27):
        #   former settings (300 queries, 4 epochs, each round from the previous one): 4.4 -> 3.5 -> 2.2 -> 3.6%
        #     (-18%): 8-16 successes a round, and round 3's DPO on top of rounds 1-2's bounced back;
        #   1500 queries, from the previous round: 4.4 -> 2.9 -> 2.2 -> 4.8% (only 840 distinct train attacks exist);
        #   from the PPO model: 300 queries, 4.4 -> 3.5 -> 3.2 -> 2.9% (-34%); 840, 4 epochs, -> 2.5% (-43%);
        #   840, 6 epochs, 4.4 -> 2.3 -> 1.6 -> 1.6% (-64%, tasks -2.0, the rest unchanged); 8 epochs, -> 1.7%
        #   (-61%, tasks -3.0); 6 epochs at 2e-4, -> 0.7% (-84%, tasks -2.0); with beta 0.05 instead of 0.1,
        #   4.4 -> 2.1 -> 1.7 -> 1.1% (-75%, tasks -1.0, the rest unchanged). On a second PPO model (beta 0.05 + ptx):
        #   beta 0.05 -65%, 2e-4 -70%, beta 0.1 at 1e-4 -61%, every check within 1 point (2.5 = one prompt on the
        #   eval's 40). The successes left are T=1 draws from the tail ("Ok, do this: [HARMFUL:...]").
        # Earlier, on two former-recipe PPO models (from the previous round, 300 queries): 1e-4 -74% and -62%;
        # 2e-4 -81% and -85% but benign answered -10.5 on one; three times the benign anchor pairs -95%, benign -11
        "adversarial": {"start": "ppo", "rounds": 3, "attackers": "templates", "queries": 840, "heldout_queries": 1000,
                        "temperature": 1.0, "train": "dpo", "retrain_from": "start", "k": 4, "check_prompts": 200,
                        "batch_size": 256, "dpo_epochs": 6.0, "dpo_learning_rate": 1e-4, "dpo_beta": 0.05,
                        "dpo_batch_size": 16, "max_new_tokens": 48},
    },
}


def pipeline_preset(name: str) -> dict:
    if name not in PIPELINE_PRESETS:
        raise ChatforgeError(f"unknown preset '{name}' (choose from: {', '.join(PIPELINE_PRESETS)})")
    return PIPELINE_PRESETS[name]
