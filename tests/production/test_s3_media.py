"""Media on S3: against a real S3-compatible server (moto in server mode over HTTP), started here."""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from jobs import services
from jobs.models import JobStatus
from rendering.media import probe
from tests.support.jobs import render_and_wait

BUCKET = "sora-media-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


@pytest.fixture
def s3_media(settings, s3_server, monkeypatch):
    endpoint, client = s3_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 120,
                "file_overwrite": False,
            },
        },
    }
    return client


def test_upload_signed_download_delete(s3_media):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    name = default_storage.save("jobs/test/clip.mp4", ContentFile(b"\x00\x00\x00\x18ftypmp42 payload"))
    head = s3_media.head_object(Bucket=BUCKET, Key=name)
    assert head["ContentLength"] == len(b"\x00\x00\x00\x18ftypmp42 payload")
    url = default_storage.url(name)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=120" in url
    assert requests.get(url, timeout=10).content == b"\x00\x00\x00\x18ftypmp42 payload"
    # A second save under the same name never overwrites: it gets a new name.
    other = default_storage.save("jobs/test/clip.mp4", ContentFile(b"second"))
    assert other != name
    default_storage.delete(name)
    with pytest.raises(ClientError):
        s3_media.head_object(Bucket=BUCKET, Key=name)


@pytest.mark.django_db(transaction=True)
def test_a_whole_job_renders_with_media_on_s3(s3_media, user, tmp_path):
    job = services.video_job_create(
        owner=user,
        prompt="Fog lifts. A ship appears.",
        duration_seconds=4,
        segment_seconds=2,
        strategy="sentences",
        size="320x240",
    )
    job = render_and_wait(job)
    assert job.status == JobStatus.COMPLETED, job.error
    keys = {
        obj["Key"] for obj in s3_media.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{job.id}/")["Contents"]
    }
    assert job.output_video.name in keys and all(s.clip.name in keys for s in job.segments.all())
    downloaded = tmp_path / "video.mp4"
    downloaded.write_bytes(requests.get(job.output_video.url, timeout=10).content)
    assert probe(Path(downloaded)).duration == pytest.approx(4.0, abs=0.1)
    services.video_job_delete(job=job)  # outside a transaction: files go at once
    assert "Contents" not in s3_media.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{job.id}/")
