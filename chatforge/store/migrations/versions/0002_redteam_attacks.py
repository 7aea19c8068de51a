"""Red-team attacks: every judged attack of a campaign, beside the chats (see models.RedteamAttack).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("redteam_attacks", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("campaign", sa.String(64), nullable=False),
                    sa.Column("attack_id", sa.String(64), nullable=False),
                    sa.Column("round", sa.Integer(), nullable=False),
                    sa.Column("attacker", sa.String(64), nullable=False),
                    sa.Column("category", sa.String(64), nullable=False),
                    sa.Column("wrapper", sa.String(64), nullable=False),
                    sa.Column("violation", sa.Boolean(), nullable=False),
                    sa.Column("rule", sa.String(32), nullable=True),
                    sa.Column("data", sa.JSON(), nullable=False),
                    sa.Column("created", sa.DateTime(timezone=True), nullable=False))
    for col in ("campaign", "violation", "created"):
        op.create_index(f"ix_redteam_attacks_{col}", "redteam_attacks", [col])
    op.create_index("uq_redteam_campaign_attack", "redteam_attacks", ["campaign", "attack_id"], unique=True)


def downgrade() -> None:
    op.drop_table("redteam_attacks")
