"""Red-teaming: attackers against an assistant (in-process or any OpenAI-compatible endpoint), a judge of every
reply, and campaigns that journal every attempt and report attack success rates.

    from chatforge.redteam import (CampaignConfig, ModelTarget, OracleJudge, TemplateAttacker, run_campaign)
    report = run_campaign(CampaignConfig(out="rt", queries=200), ModelTarget("runs/small/ppo/model"),
                          OracleJudge(), [TemplateAttacker(split="heldout")])

targets.py (what is attacked), judge.py (rules and verdicts), attackers.py (templates, attacker LM), campaign.py
(the loop and its journal), report.py (ASR and diversity), human.py (tagged product chats), cli_entry.py.
"""

from chatforge.redteam.attackers import Attack, Attacker, LMAttacker, TemplateAttacker, distance, leaks_heldout
from chatforge.redteam.campaign import CampaignConfig, Journal, run_campaign
from chatforge.redteam.judge import CombinedJudge, Judge, ModerationJudge, OracleJudge, Verdict, make_judge
from chatforge.redteam.targets import EndpointTarget, ModelTarget, Target, campaign_sampling

__all__ = ["Attack", "Attacker", "LMAttacker", "TemplateAttacker", "distance", "leaks_heldout", "CampaignConfig",
           "Journal", "run_campaign", "CombinedJudge", "Judge", "ModerationJudge", "OracleJudge", "Verdict",
           "make_judge", "EndpointTarget", "ModelTarget", "Target", "campaign_sampling"]
