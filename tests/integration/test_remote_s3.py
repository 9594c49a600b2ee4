"""The team's shared remote cache against a real S3-protocol server (moto) on loopback."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.helpers.dvc_project import make_project, ran_stages, run

BUCKET = "lensforge-team-cache"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, **_boto_kwargs()).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _boto_kwargs() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def _add_remote(repo, name: str, url: str, endpoint: str) -> None:
    run(["dvc", "remote", "add", "-f", "-d", name, url], repo)
    run(["dvc", "remote", "modify", name, "endpointurl", endpoint], repo)


def test_push_then_pull_into_a_fresh_clone_needs_no_rerun(
    project_root, tiny_model_dir, tmp_path, s3_endpoint, monkeypatch
):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    origin = make_project(project_root, tmp_path / "origin", tiny_model_dir)
    _add_remote(origin, "team", f"s3://{BUCKET}/cache", s3_endpoint)
    run(["dvc", "repro", "evaluate"], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "pipeline run + team remote"], origin)
    pushed = run(["dvc", "push", "--run-cache"], origin)
    assert "pushed" in pushed.stdout.lower()
    listed = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_kwargs()).list_objects_v2(
        Bucket=BUCKET
    )
    assert listed["KeyCount"] > 0

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "data/activations").exists()
    run(["dvc", "pull", "--run-cache", "--with-deps", "evaluate"], clone)
    assert (clone / "data/activations/manifest.json").exists()
    again = run(["dvc", "repro", "evaluate"], clone)
    assert ran_stages(again.stdout) == []
    shown_origin = json.loads(run(["dvc", "metrics", "show", "--json"], origin).stdout)
    shown_clone = json.loads(run(["dvc", "metrics", "show", "--json"], clone).stdout)
    assert shown_clone == shown_origin


def test_pull_from_an_unreachable_remote_fails_fast_and_says_why(
    project_root, tiny_model_dir, tmp_path, monkeypatch
):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    repo = make_project(project_root, tmp_path / "p", tiny_model_dir)
    _add_remote(repo, "gone", f"s3://{BUCKET}/cache", "http://127.0.0.1:9")
    run(["dvc", "config", "core.remote", "gone"], repo)
    (repo / "data.txt").write_text("x\n")
    run(["dvc", "add", "data.txt"], repo)
    started = time.monotonic()
    result = run(["dvc", "push"], repo, check=False)
    assert result.returncode != 0
    assert time.monotonic() - started < 120
    message = (result.stdout + result.stderr).lower()
    assert "connect" in message or "endpoint" in message


def test_pull_without_credentials_fails_with_a_clear_message(
    project_root, tiny_model_dir, tmp_path, s3_endpoint, monkeypatch
):
    for key in (*CREDENTIALS, "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    repo = make_project(project_root, tmp_path / "p", tiny_model_dir)
    _add_remote(repo, "team", f"s3://{BUCKET}/cache", s3_endpoint)
    (repo / "data.txt").write_text("x\n")
    run(["dvc", "add", "data.txt"], repo)
    started = time.monotonic()
    result = run(["dvc", "push"], repo, check=False)
    assert result.returncode != 0
    assert time.monotonic() - started < 120
    assert "credentials" in (result.stdout + result.stderr).lower()
