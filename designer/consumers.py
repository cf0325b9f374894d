"""Live run updates over websockets.

    ws/workflows/<id>/   status events of every run of a workflow (from the moment of connecting,
                         or after ?after=<event id>)
    ws/runs/<id>/        status events of one run, from its first event

Authenticated owners only (others are closed with 4401/4404); the origin is checked by
AllowedHostsOriginValidator in asgi.py. Events are StepEvent rows, appended by whichever process
changed a status (usually the worker), so the consumer tails the table: that works with the
in-memory channel layer, where the worker's group_send could not reach this process. With Redis
the worker also pushes events through the channel layer and they arrive at once; duplicates are
dropped by event id.
"""
from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from engine.events import run_group, workflow_group

from django.conf import settings

# With Redis, events arrive through the channel layer at once and the table is only a safety net.
POLL_S = 1.0 if settings.REDIS_URL else 0.1
BATCH = 500
# Event ids are not always committed in id order (concurrent writers; Postgres sequences), and
# pushed events may overtake each other: each poll re-reads this many ids below the highest sent
# and sends only those not sent yet.
WINDOW = 200


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        self.workflow_id = kwargs.get("workflow_id")
        self.run_id = kwargs.get("run_id")
        if not await self._owned(user):
            await self.close(code=4404)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = (query.get("after") or [""])[0]
        self.last_id = int(after) if after.isdigit() else (0 if self.run_id else await self._max_event_id())
        self.floor = self.last_id  # never send events at or below the starting point
        self.sent: set[int] = set()
        self.group = run_group(self.run_id) if self.run_id else workflow_group(self.workflow_id)
        if self.channel_layer is not None:
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.tail = asyncio.create_task(self._tail())

    async def disconnect(self, code):
        tail = getattr(self, "tail", None)
        if tail:
            tail.cancel()
        if getattr(self, "group", None) and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "last_event_id": self.last_id})

    async def _send_once(self, event: dict) -> None:
        eid = event["event_id"]
        if eid <= self.floor or eid in self.sent:
            return
        self.sent.add(eid)
        self.last_id = max(self.last_id, eid)
        await self.send_json(event)

    async def run_event(self, message):
        """An event pushed through the channel layer (Redis)."""
        await self._send_once(message["event"])

    async def _tail(self):
        while True:
            for event in await self._events_after(max(self.floor, self.last_id - WINDOW)):
                await self._send_once(event)
            low = self.last_id - WINDOW
            if len(self.sent) > 4 * WINDOW:
                self.sent = {i for i in self.sent if i > low}
                self.floor = max(self.floor, low)
            await asyncio.sleep(POLL_S)

    @database_sync_to_async
    def _owned(self, user) -> bool:
        from engine.models import Run, Workflow

        if self.run_id is not None:
            return Run.objects.filter(pk=self.run_id, workflow__owner=user).exists()
        return Workflow.objects.filter(pk=self.workflow_id, owner=user).exists()

    @database_sync_to_async
    def _max_event_id(self) -> int:
        from django.db.models import Max

        from engine.models import StepEvent

        return StepEvent.objects.aggregate(m=Max("id"))["m"] or 0

    @database_sync_to_async
    def _events_after(self, last_id: int) -> list[dict]:
        from engine.models import StepEvent

        qs = StepEvent.objects.filter(pk__gt=last_id)
        qs = qs.filter(run_id=self.run_id) if self.run_id else qs.filter(run__workflow_id=self.workflow_id)
        return [e.to_message() for e in qs.order_by("id")[:BATCH]]
