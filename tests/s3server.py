"""A real S3-compatible server for tests: moto's server in its own process, spoken to over HTTP."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

ACCESS_KEY = "strix-test-access"
SECRET_KEY = "strix-test-secret-DO-NOT-LEAK"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    def __init__(self, enforce_credentials: bool = False):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        moto_server = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # moto checks keys against its IAM only when told to; then unknown keys are refused, as on AWS.
            env={**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if enforce_credentials else {})},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the local S3 server (moto_server) did not start") from None
                time.sleep(0.1)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def settings_for(self, bucket: str) -> dict:
        return {
            "bucket_name": bucket,
            "endpoint_url": self.endpoint,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region_name": REGION,
        }

    def env_for(self, bucket: str) -> dict:
        return {
            "STRIX_S3_BUCKET": bucket,
            "STRIX_S3_ENDPOINT": self.endpoint,
            "STRIX_S3_ACCESS_KEY": ACCESS_KEY,
            "STRIX_S3_SECRET_KEY": SECRET_KEY,
            "STRIX_S3_REGION": REGION,
        }

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
