"""A job rendered for real on the in-process runner tells its callback and its owner's endpoint what
happened: every segment and the job, signed, each event once per endpoint, a failed attempt retried
by the runner's timer."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from callbacks.models import Delivery, DeliveryStatus
from rendering.transport import inprocess_runner
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_rendered_job_reports_to_its_callback_and_its_owners_endpoint(user, receiver):
    receiver.statuses = [500, 204]  # the very first attempt fails and is retried
    client = client_for(user)
    account = client.post(
        "/api/webhook-endpoints/", {"url": f"{receiver.url}?to=account"}, format="json"
    ).json()
    created = client.post(
        "/api/video-jobs/",
        {
            "prompt": "A kite. A cloud.",
            "duration_seconds": 4,
            "segment_seconds": 2,
            "use_cache": False,
            "callback_url": f"{receiver.url}?to=job",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    secrets = {
        "/hooks/sora?to=account": account["secret"],
        "/hooks/sora?to=job": created.json()["callback"]["secret"],
    }

    assert inprocess_runner().wait_idle(timeout=180)

    events: dict[str, list[str]] = {path: [] for path in secrets}
    ids: dict[str, set[str]] = {path: set() for path in secrets}
    for request in receiver.requests:
        payload = Webhook(secrets[request.path]).verify(request.body, request.headers)
        assert payload["data"]["job"]["id"] == created.json()["id"]
        if request.headers["webhook-id"] not in ids[request.path]:
            ids[request.path].add(request.headers["webhook-id"])
            events[request.path].append(payload["type"])
    for path in secrets:
        assert sorted(events[path]) == ["job.completed", "segment.completed", "segment.completed"], path
        assert events[path][-1] == "job.completed"
    assert len(receiver.requests) == 7  # 6 events, one of them sent twice
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
    assert sorted(Delivery.objects.values_list("attempts", flat=True)) == [1, 1, 1, 1, 1, 2]
