"""Server-side Prefect automations of the team setup. Idempotent; the server VM runs it once
(infra/templates/server.sh.tftpl), anyone may run it again:

    PREFECT_API_URL=http://server:4200/api .venv/bin/python infra/prefect_automations.py

Why: a flow run whose worker stops (systemd, an instance refresh) or whose VM vanishes (Spot
reclaim) stays RUNNING on the server forever; nothing else marks it. Flow runs send heartbeat
events (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, set in synthmed-worker.service), and this automation
marks a run CRASHED when its heartbeats stop without a final state: Prefect's documented way to
catch "zombie" flow runs on a self-hosted server.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

ZOMBIE_AUTOMATION = "synthmed: crash zombie flow runs"
# The heartbeat period of synthmed-worker.service (tests/infra checks they agree); three missed
# heartbeats make a zombie.
HEARTBEAT_SECONDS = 60
MISSED_HEARTBEATS = 3


def zombie_automation(heartbeat_seconds: int = HEARTBEAT_SECONDS) -> Automation:
    """Mark a flow run CRASHED when no heartbeat and no final state came for a few periods."""
    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="Flow runs whose heartbeats stopped (worker stopped, VM gone) become CRASHED.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=MISSED_HEARTBEATS * heartbeat_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message="No heartbeat: the worker or its VM stopped during the run.",
            )
        ],
    )


def ensure_automations() -> list[str]:
    """Create the automations the server lacks (by name); returns the names created."""
    try:
        Automation.read(name=ZOMBIE_AUTOMATION)
        return []
    except ValueError:  # not found
        zombie_automation().create()
        return [ZOMBIE_AUTOMATION]


if __name__ == "__main__":
    created = ensure_automations()
    print(f"created: {', '.join(created)}" if created else "automations already present")
