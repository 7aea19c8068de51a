"""Preference data: side-by-side votes from the chat UI, and the rater workspace's ranking tasks.

Every comparison is stored whole in chatforge's Comparison format (chatforge.data.comparisons), so exporting
them is writing them back out. A rater ranks a task's K replies; the ranking becomes its K·(K−1)/2 pairs,
rater "human:<name>", exactly as `chatforge rate` writes them at the terminal.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import combinations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatforge.data.comparisons import Comparison
from chatforge.data.comparisons import RankingTask as Task
from chatforge.data.rate_terminal import GUIDE
from chatforge.store.base import Conflict, NotFound, StoreBase, StoreError
from chatforge.store.models import ComparisonRow, RankingTask, Rating, User
from chatforge.world.oracle import CRITERIA


def store_comparison(s: Session, c: Comparison, **links) -> ComparisonRow:
    """Insert unless a comparison with the same id (same prompt, replies and rater) is stored already."""
    row = s.scalar(select(ComparisonRow).where(ComparisonRow.cid == c.id))
    if row is None:
        row = ComparisonRow(cid=c.id, data=c.to_dict(), source=c.source, rater=c.rater, family=c.prompt.family,
                            policy=c.policy or "", group=c.group or "", **links)
        s.add(row)
    return row


def task_dict(t: RankingTask) -> dict:
    return {"id": t.id, "group": t.group, "family": t.prompt.get("family", "imported"),
            "messages": t.prompt["messages"], "responses": list(t.responses), "policy": t.policy,
            "criteria": [{"name": c, "text": GUIDE[c]} for c in CRITERIA]}


def pair_criteria(ranking: list[int], criteria: dict | list) -> dict[tuple[int, int], dict]:
    """UI criteria → per-pair labels. {criterion: index of the best reply on it} labels the pairs holding that
    reply; a list of criterion names ("what decided it", as at the terminal) labels every pair "chosen".
    Names are kept as given: the oracle's (chatforge.world.oracle.CRITERIA, what next_task offers) are best."""
    if not all(isinstance(c, str) and c for c in criteria):
        raise StoreError("criterion names must be non-empty strings")
    out = {}
    for a, b in combinations(range(len(ranking)), 2):
        i, j = ranking[a], ranking[b]
        if isinstance(criteria, dict):
            out[(i, j)] = {c: "chosen" if best == i else "rejected" for c, best in criteria.items() if best in (i, j)}
        else:
            out[(i, j)] = {c: "chosen" for c in criteria}
    return out


class RatingsMixin(StoreBase):
    # --- comparisons ---

    def add_comparison(self, comparison: dict, user_id: int | None = None, conversation_id: int | None = None) -> dict:
        """Store one Comparison (its to_dict() form, validated as read_comparisons would); returns it."""
        try:
            c = Comparison.from_dict(comparison)
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"not a comparison: {e}") from None
        with self.write() as s:
            return store_comparison(s, c, user_id=user_id, conversation_id=conversation_id).data

    def list_comparisons(self, since: datetime | str | None = None, source: str | None = None) -> list[dict]:
        """Stored comparisons, oldest first; `since` as for export ("7d", an ISO date, a datetime)."""
        from chatforge.store.export import parse_since

        q = select(ComparisonRow.data).order_by(ComparisonRow.id)
        if (since := parse_since(since)) is not None:
            q = q.where(ComparisonRow.created >= since)
        if source is not None:
            q = q.where(ComparisonRow.source == source)
        with self.read() as s:
            return list(s.scalars(q))

    # --- ranking tasks ---

    def import_tasks(self, tasks: list) -> dict:
        """Add RankingTask dicts (or objects); a task whose group is already stored is skipped."""
        try:
            tasks = [t if isinstance(t, Task) else Task.from_dict(t) for t in tasks]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"not a ranking task: {e}") from None
        added = 0
        with self.write() as s:
            have = set(s.scalars(select(RankingTask.group)))
            for t in tasks:
                if t.group not in have:
                    s.add(RankingTask(group=t.group, prompt=t.prompt.to_dict(), responses=t.responses,
                                      policy=t.policy or ""))
                    have.add(t.group)
                    added += 1
        return {"imported": added, "skipped": len(tasks) - added}

    def next_task(self, rater_user_id: int) -> dict | None:
        """A task this rater has not ranked, the least-ranked first (so overlap for agreement comes last)."""
        counts = (select(Rating.task_id, func.count().label("n")).group_by(Rating.task_id).subquery())
        mine = select(Rating.task_id).where(Rating.rater_id == rater_user_id)
        q = (select(RankingTask).outerjoin(counts, counts.c.task_id == RankingTask.id)
             .where(RankingTask.id.not_in(mine)).order_by(func.coalesce(counts.c.n, 0), RankingTask.id))
        with self.read() as s:
            for t in s.scalars(q):
                if len(set(t.responses)) >= 2:  # nothing to choose between otherwise
                    return task_dict(t)
        return None

    def get_task(self, task_id: int) -> dict | None:
        with self.read() as s:
            t = s.get(RankingTask, task_id)
            return task_dict(t) if t else None

    def submit_ranking(self, task_id: int, rater_user_id: int, ranking: list[int],
                       criteria: dict | list | None = None) -> list[dict]:
        """Store a ranking (reply indices best first) and the comparisons it implies; returns those."""
        with self.write() as s:
            t, rater = s.get(RankingTask, task_id), s.get(User, rater_user_id)
            if t is None or rater is None:
                raise NotFound(f"no task {task_id}" if t is None else f"no user {rater_user_id}")
            k = len(t.responses)
            if sorted(ranking) != list(range(k)):
                raise StoreError(f"rank all {k} replies: each index from 0 to {k - 1} once, best first")
            if isinstance(criteria, dict) and not all(type(v) is int and 0 <= v < k for v in criteria.values()):
                raise StoreError(f"criteria must map each criterion to the index (0 to {k - 1}) of the best reply")
            task = Task.from_dict({"prompt": t.prompt, "responses": t.responses, "policy": t.policy, "group": t.group})
            pairs = task.pairs(ranking, f"human:{rater.name}", "human", pair_criteria(ranking, criteria or {}))
            try:
                with s.begin_nested():
                    s.add(Rating(task_id=task_id, rater_id=rater_user_id, ranking=list(ranking),
                                 criteria=criteria or {}))
            except IntegrityError:
                raise Conflict(f"task {task_id} is already ranked by {rater.name}") from None
            for c in pairs:
                store_comparison(s, c, user_id=rater_user_id, task_id=task_id)
            return [c.to_dict() for c in pairs]

    def task_count(self) -> int:
        with self.read() as s:
            return s.scalar(select(func.count()).select_from(RankingTask))

    def rater_progress(self) -> list[dict]:
        """Per rater (role rater or admin, or anyone who ranked): tasks done out of the total."""
        with self.read() as s:
            total = s.scalar(select(func.count()).select_from(RankingTask))
            done = dict(s.execute(select(Rating.rater_id, func.count()).group_by(Rating.rater_id)).all())
            users = s.scalars(select(User).where((User.role.in_(("rater", "admin"))) | User.id.in_(list(done)))
                              .order_by(User.id))
            return [{"user_id": u.id, "name": u.name, "role": u.role, "done": done.get(u.id, 0), "total": total}
                    for u in users]

    def agreement(self) -> dict:
        """On tasks ranked by two raters or more: the share of (rater pair, reply pair) judgements that agree."""
        by_task = defaultdict(list)
        with self.read() as s:
            for task_id, ranking, responses in s.execute(
                    select(Rating.task_id, Rating.ranking, RankingTask.responses).join(RankingTask)):
                by_task[task_id].append((ranking, responses))
        tasks = pairs = agree = 0
        for ratings in by_task.values():
            if len(ratings) < 2:
                continue
            tasks += 1
            responses = ratings[0][1]
            places = [{i: p for p, i in enumerate(r)} for r, _ in ratings]
            for x, y in combinations(places, 2):
                for i, j in combinations(range(len(responses)), 2):
                    if responses[i] != responses[j]:  # identical replies have no order to agree on
                        pairs += 1
                        agree += (x[i] < x[j]) == (y[i] < y[j])
        return {"tasks": tasks, "pairs": pairs, "agree": agree, "rate": round(agree / pairs, 4) if pairs else None}
