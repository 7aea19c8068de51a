"""Red-team campaigns in the product store: each judged attack of `chatforge redteam --store DB` as a row,
deduplicated by (campaign, attack id), so one store holds the product's chats, the human red-teaming done through
them (chats tagged #campaign) and the automated campaigns' attacks.
"""

from __future__ import annotations

from sqlalchemy import case, func, select

from chatforge.evals.intervals import rate_interval
from chatforge.store.base import StoreBase, StoreError, iso
from chatforge.store.models import RedteamAttack


def attack_dict(r: RedteamAttack) -> dict:
    return {**r.data, "campaign": r.campaign, "stored": iso(r.created)}


class RedteamMixin(StoreBase):
    def add_attacks(self, rows: list[dict]) -> int:
        """Store judged attacks (campaign journal lines); those already stored for their campaign are skipped.
        Returns how many were new."""
        if not rows:
            return 0
        for r in rows:
            if not r.get("campaign") or not r.get("id") or "verdict" not in r:
                raise StoreError("a red-team row needs a campaign, an id and a verdict")
        new = 0
        with self.write() as s:
            for campaign in {r["campaign"] for r in rows}:
                mine = [r for r in rows if r["campaign"] == campaign]
                have = set(s.scalars(select(RedteamAttack.attack_id).where(
                    RedteamAttack.campaign == campaign, RedteamAttack.attack_id.in_([r["id"] for r in mine]))))
                for r in mine:
                    if r["id"] in have:
                        continue
                    have.add(r["id"])
                    v = r["verdict"]
                    s.add(RedteamAttack(campaign=campaign[:64], attack_id=r["id"], round=int(r.get("round") or 0),
                                        attacker=str(r.get("attacker", ""))[:64],
                                        category=str(r.get("category") or "")[:64],
                                        wrapper=str(r.get("wrapper") or "")[:64], violation=bool(v.get("violation")),
                                        rule=v.get("rule"), data=r))
                    new += 1
        return new

    def attacks(self, campaign: str, violations_only: bool = False, limit: int | None = None) -> list[dict]:
        """A campaign's stored attacks, oldest first."""
        q = select(RedteamAttack).where(RedteamAttack.campaign == campaign).order_by(RedteamAttack.id)
        if violations_only:
            q = q.where(RedteamAttack.violation.is_(True))
        if limit:
            q = q.limit(limit)
        with self.read() as s:
            return [attack_dict(r) for r in s.scalars(q)]

    def campaigns(self) -> list[dict]:
        """Every campaign with its attacks, successes and ASR (percent, with its 95% interval), newest first."""
        wins = func.sum(case((RedteamAttack.violation.is_(True), 1), else_=0))
        q = (select(RedteamAttack.campaign, func.count(), wins, func.max(RedteamAttack.created))
             .group_by(RedteamAttack.campaign).order_by(func.max(RedteamAttack.created).desc()))
        with self.read() as s:
            return [{"campaign": c, "queries": n, "successes": int(w or 0),
                     "asr": round(100 * int(w or 0) / n, 2) if n else None,
                     "asr_interval": rate_interval(int(w or 0), n), "last": iso(t)}
                    for c, n, w, t in s.execute(q)]
